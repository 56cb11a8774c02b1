// IP allowlist matching: IPv4, IPv6, CIDR, IPv4-mapped IPv6 both ways, and bad rules.
import { describe, expect, it } from 'vitest';
import { CidrSet, parseRule } from './cidr.js';

const set = (rules: string[]) => {
  const r = CidrSet.parse(rules);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

/** Asserts that `rules` let in every address of `inside` and none of `outside`. */
function expectSplit(rules: string[], inside: string[], outside: string[]) {
  const s = set(rules);
  for (const ip of inside) expect(s.contains(ip), ip).toBe(true);
  for (const ip of outside) expect(s.contains(ip), ip).toBe(false);
}

describe('IP allowlists', () => {
  it('IPv4 addresses and CIDRs', () => {
    expectSplit(
      ['10.0.0.0/8', '192.168.1.7', '172.16.0.0/12'],
      ['10.0.0.1', '10.255.255.255', '192.168.1.7', '172.31.255.255'],
      ['11.0.0.1', '192.168.1.8', '172.32.0.0'],
    );
    expectSplit(['127.0.0.1/32'], ['127.0.0.1'], ['127.0.0.2']);
    expectSplit(['0.0.0.0/0'], ['203.0.113.9'], []);
  });

  it('IPv6 addresses and CIDRs', () => {
    expectSplit(
      ['2001:db8::/32', '::1', 'fe80::/10'],
      ['2001:db8::1', '2001:db8:ffff:ffff::42', '::1', '0:0:0:0:0:0:0:1', 'fe80::abcd'],
      ['2001:db9::1', '::2', 'fec0::1'],
    );
    expectSplit(['2001:db8::5/128'], ['2001:db8::5'], ['2001:db8::6']);
  });

  it('IPv4 rules never match plain IPv6 addresses, nor IPv6 rules IPv4', () => {
    expectSplit(['0.0.0.0/0'], [], ['2001:db8::1']);
    expectSplit(['::/0'], [], ['10.0.0.1']);
    expectSplit(['127.0.0.1'], [], ['::1']);
    expectSplit(['::1'], [], ['127.0.0.1']);
  });

  it('an IPv4-mapped IPv6 client matches IPv4 rules', () => {
    expectSplit(['10.0.0.0/8'], ['::ffff:10.0.0.1', '::FFFF:10.1.2.3'], ['::ffff:11.0.0.1']);
    expectSplit(['127.0.0.1'], ['::ffff:127.0.0.1'], []);
  });

  it('IPv4-mapped IPv6 rules match IPv4 clients (and mapped clients)', () => {
    expectSplit(['::ffff:10.0.0.1'], ['10.0.0.1'], ['10.0.0.2']);
    expectSplit(['::ffff:10.0.0.0/104'], ['10.200.0.1', '::ffff:10.200.0.1'], ['11.0.0.1']);
    expectSplit(['::ffff:0:0/96'], ['198.51.100.1'], []);
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
