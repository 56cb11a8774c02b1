// Client-side checks that mirror the server's rules, so mistakes show up next to the field.

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(s: string): boolean {
  return V4.test(s);
}

export function isIPv6(s: string): boolean {
  let str = s;
  const zone = str.indexOf('%');
  if (zone >= 0) return false; // zone ids make no sense in an allowlist
  let groupsNeeded = 8;
  // embedded IPv4 tail, e.g. ::ffff:10.0.0.1
  const lastColon = str.lastIndexOf(':');
  if (lastColon >= 0 && str.slice(lastColon + 1).includes('.')) {
    if (!isIPv4(str.slice(lastColon + 1))) return false;
    str = str.slice(0, lastColon + 1) + '0';
    groupsNeeded = 7;
  }
  const hex = /^[0-9a-fA-F]{1,4}$/;
  const dbl = str.split('::');
  if (dbl.length > 2) return false;
  if (dbl.length === 2) {
    const left = dbl[0] ? dbl[0].split(':') : [];
    const right = dbl[1] ? dbl[1].split(':') : [];
    if (![...left, ...right].every((g) => hex.test(g))) return false;
    return left.length + right.length <= groupsNeeded - 1;
  }
  const groups = str.split(':');
  return groups.length === groupsNeeded && groups.every((g) => hex.test(g));
}

/** One allowlist entry: an IPv4/IPv6 address or CIDR block. Returns an error text or null. */
export function checkIpRule(entry: string): string | null {
  const [addr, prefix, extra] = entry.split('/');
  if (extra !== undefined || !addr) return `“${entry}” is not an IP address or CIDR block.`;
  const v4 = isIPv4(addr);
  const v6 = !v4 && isIPv6(addr);
  if (!v4 && !v6) return `“${entry}” is not an IP address or CIDR block.`;
  if (prefix !== undefined) {
    const max = v4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) {
      return `“${entry}”: the prefix length must be between 0 and ${max}.`;
    }
  }
  return null;
}

/** Splits a textarea (one rule per line; commas also accepted) and validates each line. */
export function parseIpRules(text: string): { rules: string[]; error: string | null } {
  const rules = text
    .split(/[\n,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  for (const r of rules) {
    const err = checkIpRule(r);
    if (err) return { rules, error: err };
  }
  return { rules, error: null };
}

/** The largest amount the ledger holds, USD (the server's MAX_USD). */
export const MAX_USD = 9_000_000;

/**
 * Parses a USD amount typed by a person; null for empty. The server's rules: at most 9
 * decimals (nano-USD) and 15 significant digits (what a JSON number carries exactly), at most
 * MAX_USD. An amount the API stored can be saved again unchanged.
 */
/**
 * A USD amount as a form field's text, in plain decimals as parseUsd reads them: String(1e-9)
 * is "1e-9", which could not be saved again unchanged.
 */
export const usdText = (v: number | null | undefined): string =>
  v == null ? '' : v.toFixed(9).replace(/\.?0+$/, '');

export function parseUsd(text: string): { value: number | null; error: string | null } {
  const t = text.trim().replace(/^\$/, '');
  if (!t) return { value: null, error: null };
  if (!/^\d+(\.\d+)?$/.test(t))
    return { value: null, error: 'Enter an amount in US dollars, e.g. 25 or 12.50.' };
  if ((t.split('.')[1] ?? '').replace(/0+$/, '').length > 9)
    return { value: null, error: 'Use at most 9 decimal places (a billionth of a dollar).' };
  if (t.replace('.', '').replace(/^0+/, '').replace(/0+$/, '').length > 15)
    return { value: null, error: 'Use at most 15 significant digits.' };
  const value = Number(t);
  if (value > MAX_USD)
    return { value: null, error: `At most ${MAX_USD.toLocaleString('en-US')} US dollars.` };
  return { value, error: null };
}

export function parseList(text: string): string[] {
  return text
    .split(/[\n,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * A limit typed by a person (rpm, tpm, concurrency, days): empty = none; else a whole number
 * from 1 to `max`, as the server requires.
 */
export function parseLimit(
  text: string,
  max: number,
  what: string,
): { value: number | null; error: string | null } {
  const t = text.trim().replace(/[,_\s]/g, '');
  if (!t) return { value: null, error: null };
  const n = Number(t);
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(n) || n < 1 || n > max)
    return {
      value: null,
      error: `Enter a whole number of ${what} from 1 to ${max.toLocaleString('en-US')}, or leave it empty.`,
    };
  return { value: n, error: null };
}
