// IP allowlists: IPv4 and IPv6 addresses and CIDRs, via ipaddr.js. IPv4-mapped IPv6
// addresses (::ffff:10.0.0.1) match IPv4 rules, and vice versa.
import ipaddr from 'ipaddr.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

function toCanonical(addr: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) return (addr as ipaddr.IPv6).toIPv4Address();
  return addr;
}

export function parseRule(rule: string): ParseResult<Range> {
  const s = rule.trim();
  if (!s || s.length > 64) return { ok: false, error: `invalid IP or CIDR: ${JSON.stringify(rule.slice(0, 64))}` };
  try {
    if (s.includes('/')) {
      const [addr, bits] = ipaddr.parseCIDR(s);
      if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
        return { ok: true, value: [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96] };
      }
      return { ok: true, value: [addr, bits] };
    }
    if (!ipaddr.isValid(s)) throw new Error('bad');
    const addr = toCanonical(ipaddr.parse(s));
    return { ok: true, value: [addr, addr.kind() === 'ipv4' ? 32 : 128] };
  } catch {
    return { ok: false, error: `invalid IP or CIDR: ${JSON.stringify(s)}` };
  }
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
    if (!ipaddr.isValid(ip)) return false;
    const addr = toCanonical(ipaddr.parse(ip));
    for (const [net, bits] of this.ranges) {
      if (net.kind() === addr.kind() && addr.match([net, bits] as any)) return true;
    }
    return false;
  }
}
