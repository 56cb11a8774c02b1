// The client's address: the socket peer, unless that peer is a trusted proxy, in which case
// X-Forwarded-For is walked from the right, skipping trusted hops. A spoofed header from an
// untrusted peer is ignored.
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
      .map((s) => normalizeIp(s.trim()))
      .filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (!set.contains(hop)) return hop;
    }
    return hops[0] ?? peer;
  };
}

/** Strips IPv4-mapped IPv6 (::ffff:1.2.3.4 → 1.2.3.4) so logs and rules read naturally. */
export function normalizeIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}
