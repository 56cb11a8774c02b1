// The client's address: the socket peer, unless that peer is a trusted proxy, in which case
// X-Forwarded-For is walked from the right, skipping trusted hops. A spoofed header from an
// untrusted peer is ignored. Some proxies write a hop with its port (`1.2.3.4:5555`,
// `[2001:db8::5]:1234`): the address is read from it. A hop that is no address at all ends
// the walk at the peer, so a log's `ip` and an allowlist only ever see addresses.
import { isIP } from 'node:net';
import { CidrSet } from '../shared/cidr.js';

export function makeClientIpResolver(trustedProxies: string[]) {
  const trusted = CidrSet.parse(trustedProxies);
  if (!trusted.ok) throw new Error(`MOLE_TRUSTED_PROXIES: ${trusted.error}`);
  const set = trusted.value;
  return function clientIp(socketIp: string | undefined, xff: string | string[] | undefined): string {
    const peer = normalizeIp(socketIp ?? '');
    if (set.isEmpty() || !xff || !set.contains(peer)) return peer;
    const hops = (Array.isArray(xff) ? xff.join(',') : xff)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    let client = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hopAddress(hops[i]!);
      if (hop === null) return peer;
      client = hop;
      if (!set.contains(hop)) return hop;
    }
    return client;
  };
}

/** A forwarded hop's address, without a port or brackets; null when it is not an address. */
function hopAddress(hop: string): string | null {
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(hop) ?? /^([\d.]+):(\d{1,5})$/.exec(hop);
  if (m && m[2] !== undefined && Number(m[2]) > 65_535) return null;
  const ip = m ? m[1]! : hop;
  return isIP(ip) ? normalizeIp(ip) : null;
}

/** Strips IPv4-mapped IPv6 (::ffff:1.2.3.4 → 1.2.3.4) so logs and rules read naturally. */
export function normalizeIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}
