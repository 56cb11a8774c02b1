// IP allowlists: IPv4 and IPv6 addresses and CIDRs, via ipaddr.js. IPv4-mapped IPv6
// addresses (::ffff:10.0.0.1) match IPv4 rules, and vice versa.
import ipaddr from 'ipaddr.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

function toCanonical(addr: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress())
    return (addr as ipaddr.IPv6).toIPv4Address();
  return addr;
}

/**
 * Strict address parsing: IPv4 only in plain dotted-quad decimal. ipaddr.js on its own also
 * reads "010.0.0.1" as octal (8.0.0.1), "127.1" and "2130706433" as 127.0.0.1, which would
 * make an allowlist mean something other than what it plainly says.
 */
function parseAddr(s: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  try {
    if (s.includes(':')) return ipaddr.IPv6.isValid(s) ? ipaddr.IPv6.parse(s) : null;
    return ipaddr.IPv4.isValidFourPartDecimal(s) ? ipaddr.IPv4.parse(s) : null;
  } catch {
    return null;
  }
}

export function parseRule(rule: string): ParseResult<Range> {
  const s = rule.trim();
  const bad = { ok: false as const, error: `invalid IP or CIDR: ${JSON.stringify(s.slice(0, 64))}` };
  if (!s || s.length > 64) return bad;
  const slash = s.indexOf('/');
  const addr = parseAddr(slash >= 0 ? s.slice(0, slash) : s);
  if (!addr) return bad;
  if (slash < 0) {
    const c = toCanonical(addr);
    return { ok: true, value: [c, c.kind() === 'ipv4' ? 32 : 128] };
  }
  const bitsText = s.slice(slash + 1);
  const bits = Number(bitsText);
  if (!/^\d{1,3}$/.test(bitsText) || bits > (addr.kind() === 'ipv4' ? 32 : 128)) return bad;
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return { ok: true, value: [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96] };
  }
  return { ok: true, value: [addr, bits] };
}

export class CidrSet {
  private constructor(private readonly ranges: Range[]) {}

  static parse(rules: string[]): ParseResult<CidrSet> {
    const ranges: Range[] = [];
    for (const r of rules) {
      const p = parseRule(r);
      if (!p.ok) return p;
      ranges.push(p.value);
    }
    return { ok: true, value: new CidrSet(ranges) };
  }

  isEmpty(): boolean {
    return this.ranges.length === 0;
  }

  contains(ip: string): boolean {
    const parsed = parseAddr(ip);
    if (!parsed) return false;
    const addr = toCanonical(parsed);
    for (const [net, bits] of this.ranges) {
      if (net.kind() === addr.kind() && addr.match(net, bits)) return true;
    }
    return false;
  }
}
