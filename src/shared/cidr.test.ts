// IP allowlist matching: IPv4, IPv6, CIDR, IPv4-mapped IPv6 both ways, and bad rules.
import { describe, expect, it } from 'vitest';
import { CidrSet, parseRule } from './cidr.js';

const set = (rules: string[]) => {
  const r = CidrSet.parse(rules);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

describe('IP allowlists', () => {
  it('IPv4 addresses and CIDRs', () => {
    const s = set(['10.0.0.0/8', '192.168.1.7', '172.16.0.0/12']);
    expect(s.contains('10.0.0.1')).toBe(true);
    expect(s.contains('10.255.255.255')).toBe(true);
    expect(s.contains('11.0.0.1')).toBe(false);
    expect(s.contains('192.168.1.7')).toBe(true);
    expect(s.contains('192.168.1.8')).toBe(false);
    expect(s.contains('172.31.255.255')).toBe(true);
    expect(s.contains('172.32.0.0')).toBe(false);
    expect(set(['127.0.0.1/32']).contains('127.0.0.1')).toBe(true);
    expect(set(['127.0.0.1/32']).contains('127.0.0.2')).toBe(false);
    expect(set(['0.0.0.0/0']).contains('203.0.113.9')).toBe(true);
  });

  it('IPv6 addresses and CIDRs', () => {
    const s = set(['2001:db8::/32', '::1', 'fe80::/10']);
    expect(s.contains('2001:db8::1')).toBe(true);
    expect(s.contains('2001:db8:ffff:ffff::42')).toBe(true);
    expect(s.contains('2001:db9::1')).toBe(false);
    expect(s.contains('::1')).toBe(true);
    expect(s.contains('0:0:0:0:0:0:0:1')).toBe(true);
    expect(s.contains('::2')).toBe(false);
    expect(s.contains('fe80::abcd')).toBe(true);
    expect(s.contains('fec0::1')).toBe(false);
    expect(set(['2001:db8::5/128']).contains('2001:db8::5')).toBe(true);
    expect(set(['2001:db8::5/128']).contains('2001:db8::6')).toBe(false);
  });

  it('IPv4 rules never match plain IPv6 addresses, nor IPv6 rules IPv4', () => {
    expect(set(['0.0.0.0/0']).contains('2001:db8::1')).toBe(false);
    expect(set(['::/0']).contains('10.0.0.1')).toBe(false);
    expect(set(['127.0.0.1']).contains('::1')).toBe(false);
    expect(set(['::1']).contains('127.0.0.1')).toBe(false);
  });

  it('an IPv4-mapped IPv6 client matches IPv4 rules', () => {
    const s = set(['10.0.0.0/8']);
    expect(s.contains('::ffff:10.0.0.1')).toBe(true);
    expect(s.contains('::FFFF:10.1.2.3')).toBe(true);
    expect(s.contains('::ffff:11.0.0.1')).toBe(false);
    expect(set(['127.0.0.1']).contains('::ffff:127.0.0.1')).toBe(true);
  });

  it('IPv4-mapped IPv6 rules match IPv4 clients (and mapped clients)', () => {
    expect(set(['::ffff:10.0.0.1']).contains('10.0.0.1')).toBe(true);
    expect(set(['::ffff:10.0.0.1']).contains('10.0.0.2')).toBe(false);
    expect(set(['::ffff:10.0.0.0/104']).contains('10.200.0.1')).toBe(true);
    expect(set(['::ffff:10.0.0.0/104']).contains('::ffff:10.200.0.1')).toBe(true);
    expect(set(['::ffff:10.0.0.0/104']).contains('11.0.0.1')).toBe(false);
    expect(set(['::ffff:0:0/96']).contains('198.51.100.1')).toBe(true);
  });

  it('an empty set matches nobody; garbage client addresses match nothing', () => {
    expect(set([]).isEmpty()).toBe(true);
    expect(set([]).contains('127.0.0.1')).toBe(false);
    const any = set(['0.0.0.0/0', '::/0']);
    for (const ip of ['', 'localhost', 'abc', '1.2.3', '1.2.3.4.5', '::g'])
      expect(any.contains(ip)).toBe(false);
  });

  it('surrounding blanks are tolerated in rules', () => {
    expect(parseRule(' 10.0.0.0/8 ').ok).toBe(true);
  });

  it.each([
    '',
    ' ',
    'abc',
    'localhost',
    '10.0.0.0/33',
    '10.0.0.0/-1',
    '10.0.0.0/',
    '/8',
    '10.0.0.0/8/8',
    '10.0.0.0/x',
    '300.1.1.1',
    '1.2.3.4.5',
    '1.2.3',
    '::1/129',
    '2001:db8::/200',
    ':::1',
    '2001:db8::g',
    '1.2.3.4/ 8',
    // Non-standard IPv4 spellings: a rule must mean what it plainly says, so these are refused
    // rather than read as octal/hex/short forms (010.0.0.1 would otherwise mean 8.0.0.1).
    '010.0.0.1',
    '0x7f.0.0.1',
    '127.1',
    '10',
    '2130706433',
    '10/8',
    '010.0.0.0/8',
    'x'.repeat(100),
    '1.2.3.4'.padEnd(70, '0'),
  ])('rejects the bad rule %j', (rule) => {
    const r = parseRule(rule);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/invalid IP or CIDR/);
    expect(CidrSet.parse(['10.0.0.0/8', rule]).ok).toBe(false);
  });
});
