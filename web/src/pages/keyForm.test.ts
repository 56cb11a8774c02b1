// The key form's rules without a browser: initial state, edits, validation and the body
// sent on create and on edit.
import { describe, expect, it } from 'vitest';
import type { ApiKey } from '../api';
import { toDateInput } from '../format';
import {
  dateToIso,
  fieldOfParam,
  initialKeyForm,
  type KeyFormAction,
  type KeyFormState,
  keyFormReducer,
  validateKeyForm,
} from './keyForm';

const SELF = 7;
const NOW = Date.parse('2030-06-15T12:00:00Z');
const DAY = 86_400_000;
const create = { isAdmin: false, selfId: SELF, now: NOW };

const existingKey = (over: Partial<ApiKey> = {}): ApiKey => ({
  id: 3,
  name: 'web-prod',
  user_id: 9,
  status: 'active',
  display: 'sk-abc…wxyz',
  models: ['gpt-4o', 'claude-*'],
  allowed_ips: ['10.0.0.0/8', '203.0.113.7'],
  quota: 12.5,
  used: 1,
  group: 'vip',
  rpm: 60,
  expires_at: '2030-07-01T21:59:59.000Z',
  created_at: '2030-01-01T00:00:00.000Z',
  last_used_at: null,
  last_used_ip: null,
  ...over,
});

const form = (...actions: KeyFormAction[]): KeyFormState =>
  actions.reduce(keyFormReducer, initialKeyForm(undefined, SELF));
const set = (field: Extract<KeyFormAction, { type: 'set' }>['field'], value: string): KeyFormAction => ({
  type: 'set',
  field,
  value,
});
const setBudget = (field: 'amount' | 'period', value: string): KeyFormAction => ({
  type: 'budget',
  field,
  value,
});

describe('initialKeyForm', () => {
  it('starts empty, owned by the signed-in user', () => {
    expect(initialKeyForm(undefined, SELF)).toEqual({
      name: '',
      owner: '7',
      group: '',
      models: [],
      patterns: '',
      ips: '',
      origins: '',
      quota: '',
      expires: '',
      rpm: '',
      tpm: '',
      concurrency: '',
      guardIps: '',
      guardSpend: '',
      guardAction: 'alert',
      budget: { amount: '', period: 'monthly' },
      errors: {},
    });
  });

  it('splits an existing key into picked models and patterns, one IP per line', () => {
    const s = initialKeyForm(existingKey(), SELF);
    expect(s).toMatchObject({
      name: 'web-prod',
      owner: '9',
      group: 'vip',
      models: ['gpt-4o'],
      patterns: 'claude-*',
      ips: '10.0.0.0/8\n203.0.113.7',
      quota: '12.5',
      rpm: '60',
    });
    expect(s.expires).toBe(toDateInput(new Date('2030-07-01T21:59:59.000Z')));
  });
});

describe('keyFormReducer', () => {
  it('sets fields and models without touching the rest', () => {
    const s = form(set('name', 'a'), set('quota', '5'), { type: 'models', models: ['m1', 'm2'] });
    expect(s).toMatchObject({ name: 'a', quota: '5', models: ['m1', 'm2'], ips: '' });
  });

  it('a validation replaces all errors; a server error adds one', () => {
    const s = form(
      { type: 'errors', errors: { name: 'x', ips: 'y' } },
      { type: 'errors', errors: { quota: 'z' } },
      { type: 'fieldError', field: 'rpm', message: 'too high' },
    );
    expect(s.errors).toEqual({ quota: 'z', rpm: 'too high' });
  });
});

describe('validateKeyForm', () => {
  it('needs a name of at most 128 characters', () => {
    expect(validateKeyForm(form(set('name', '   ')), create).errors.name).toMatch(/Give the key a name/);
    expect(validateKeyForm(form(set('name', 'x'.repeat(129))), create).errors.name).toMatch(/at most 128/);
    expect(validateKeyForm(form(set('name', 'x'.repeat(128))), create).errors).toEqual({});
    // Characters, as the server counts them: 128 emoji are 256 UTF-16 units.
    expect(validateKeyForm(form(set('name', '🔑'.repeat(128))), create).errors).toEqual({});
    expect(validateKeyForm(form(set('name', '🔑'.repeat(129))), create).errors.name).toMatch(/at most 128/);
  });

  it.each([
    ['ips', '10.0.0.0/33', /prefix length/],
    ['ips', 'not-an-ip', /not an IP address/],
    ['quota', '12.34567890123', /9 decimal places/],
    ['quota', '-1', /US dollars/],
    ['rpm', '0', /whole number/],
    ['rpm', '1.5', /whole number/],
    ['patterns', 'gpt 4o*', /a pattern is a model name/],
    ['patterns', 'gpt*4o', /a pattern is a model name/],
  ] as const)('%s “%s” is refused', (field, value, message) => {
    const r = validateKeyForm(form(set('name', 'k'), set(field, value)), create);
    expect(r.body).toBeNull();
    expect(Object.values(r.errors)).toEqual([expect.stringMatching(message)]);
  });

  it('expiry must be a day after today (the key ends at the end of that local day)', () => {
    const today = toDateInput(new Date(NOW));
    const yesterday = toDateInput(new Date(NOW - DAY));
    expect(validateKeyForm(form(set('name', 'k'), set('expires', yesterday)), create).errors.expires).toBe(
      'Pick a date in the future.',
    );
    const ok = validateKeyForm(form(set('name', 'k'), set('expires', today)), create);
    expect(ok.errors).toEqual({});
    expect(ok.body?.expires_at).toBe(dateToIso(today));
  });

  it("in a group whose keys live N days, the Nth day's preset expires at the cap, a later day is refused", () => {
    const ctx = { ...create, maxLifetimeDays: 30 };
    const cap = NOW + 30 * DAY - 60_000;
    const lastDay = toDateInput(new Date(NOW + 30 * DAY));
    const atCap = validateKeyForm(form(set('name', 'k'), set('expires', lastDay)), ctx);
    expect(atCap.errors).toEqual({});
    expect(atCap.body?.expires_at).toBe(new Date(cap).toISOString());
    const earlier = toDateInput(new Date(NOW + 10 * DAY));
    expect(validateKeyForm(form(set('name', 'k'), set('expires', earlier)), ctx).body?.expires_at).toBe(
      dateToIso(earlier),
    );
    const later = validateKeyForm(
      form(set('name', 'k'), set('expires', toDateInput(new Date(NOW + 31 * DAY)))),
      ctx,
    );
    expect(later.errors.expires).toBe(
      `Keys of this group expire within 30 days: pick ${lastDay} or earlier.`,
    );
    // No expiry at all is past the cap too: said here, not by the server's refusal.
    expect(validateKeyForm(form(set('name', 'k')), ctx).errors.expires).toBe(
      `Keys of this group expire within 30 days: pick ${lastDay} or earlier.`,
    );
  });

  it('on create, leaves unset fields out and trims the name', () => {
    expect(validateKeyForm(form(set('name', '  web-prod ')), create)).toEqual({
      errors: {},
      body: { name: 'web-prod' },
    });
  });

  it('on create, sends everything that was filled in', () => {
    const s = form(
      set('name', 'k'),
      { type: 'models', models: ['gpt-4o'] },
      set('patterns', 'claude-*, o1*'),
      set('ips', '203.0.113.7\n10.0.0.0/8, ::1'),
      set('quota', '$12.50'),
      set('rpm', '60'),
      set('group', 'vip'),
    );
    expect(validateKeyForm(s, create).body).toEqual({
      name: 'k',
      models: ['gpt-4o', 'claude-*', 'o1*'],
      allowed_ips: ['203.0.113.7', '10.0.0.0/8', '::1'],
      quota: 12.5,
      rpm: 60,
      group: 'vip',
    });
  });

  it('an admin creating for someone else names the owner; for themself, not', () => {
    const admin = { ...create, isAdmin: true };
    expect(validateKeyForm(form(set('name', 'k'), set('owner', '12')), admin).body).toEqual({
      name: 'k',
      user_id: 12,
    });
    expect(validateKeyForm(form(set('name', 'k')), admin).body).toEqual({ name: 'k' });
    // a non-admin cannot pick an owner, whatever the state says
    expect(validateKeyForm(form(set('name', 'k'), set('owner', '12')), create).body).toEqual({ name: 'k' });
  });

  it('on edit, an expiry left as it was is not sent (it stays to the second), even one that passed', () => {
    for (const expires_at of ['2030-07-01T00:00:00.000Z', '2030-06-01T00:00:00.000Z']) {
      const existing = existingKey({ expires_at });
      const s = keyFormReducer(initialKeyForm(existing, SELF), set('quota', '4'));
      const r = validateKeyForm(s, { ...create, existing });
      expect(r.errors).toEqual({});
      expect(r.body).toMatchObject({ quota: 4 });
      expect(r.body).not.toHaveProperty('expires_at');
    }
    // A day picked anew is sent, as the end of that local day.
    const existing = existingKey();
    const later = toDateInput(new Date(NOW + 30 * DAY));
    const s = keyFormReducer(initialKeyForm(existing, SELF), set('expires', later));
    expect(validateKeyForm(s, { ...create, existing }).body?.expires_at).toBe(dateToIso(later));
  });

  it('on edit, sends every field, emptied ones as null (which clears them)', () => {
    const existing = existingKey();
    const s = keyFormReducer(
      keyFormReducer(initialKeyForm(existing, SELF), set('quota', '')),
      set('expires', ''),
    );
    expect(validateKeyForm(s, { ...create, existing }).body).toEqual({
      name: 'web-prod',
      models: ['gpt-4o', 'claude-*'],
      allowed_ips: ['10.0.0.0/8', '203.0.113.7'],
      allowed_origins: [],
      quota: null,
      expires_at: null,
      group: 'vip',
      rpm: 60,
      tpm: null,
      max_concurrency: null,
      guard: null,
    });
  });

  it('tokens per minute and concurrency: whole numbers in range, sent as tpm and max_concurrency', () => {
    const bad = validateKeyForm(form(set('name', 'k'), set('tpm', '1.5'), set('concurrency', '0')), create);
    expect(bad.body).toBeNull();
    expect(bad.errors.tpm).toMatch(/whole number/);
    expect(bad.errors.concurrency).toMatch(/whole number/);
    expect(
      validateKeyForm(form(set('name', 'k'), set('concurrency', '20000')), create).errors.concurrency,
    ).toMatch(/10,000/);
    expect(
      validateKeyForm(form(set('name', 'k'), set('tpm', '100,000'), set('concurrency', '3')), create).body,
    ).toEqual({ name: 'k', tpm: 100_000, max_concurrency: 3 });
    expect(fieldOfParam('max_concurrency')).toBe('concurrency');
  });

  it('sends the anomaly guard when a threshold is filled in', () => {
    const s = form(
      set('name', 'k'),
      set('guardIps', '5'),
      set('guardSpend', '2.5'),
      set('guardAction', 'disable'),
    );
    expect(validateKeyForm(s, create).body).toEqual({
      name: 'k',
      guard: { max_ips_per_hour: 5, max_spend_per_hour: 2.5, action: 'disable' },
    });
    expect(validateKeyForm(form(set('name', 'k'), set('guardIps', '0')), create).errors.guard).toMatch(
      /whole number of client IPs/,
    );
    expect(
      validateKeyForm(form(set('name', 'k'), set('guardSpend', '0')), create).errors.guard,
    ).toBeDefined();
  });

  it('on edit, a key that allows nothing keeps allowing nothing', () => {
    const existing = existingKey({ models: [], allowed_ips: [] });
    const body = validateKeyForm(initialKeyForm(existing, SELF), { ...create, existing }).body;
    expect(body).toMatchObject({ models: [], allowed_ips: [] });
    const open = existingKey({ models: null, allowed_ips: null });
    expect(validateKeyForm(initialKeyForm(open, SELF), { ...create, existing: open }).body).toMatchObject({
      models: null,
      allowed_ips: null,
    });
  });
});

describe('allowed origins', () => {
  it('one per line (or comma-separated), sent as a list; empty on create is left out', () => {
    const s = keyFormReducer(
      keyFormReducer(initialKeyForm(undefined, SELF), set('name', 'web')),
      set('origins', 'https://app.example.com\nhttps://*.example.com, http://localhost:5173'),
    );
    expect(validateKeyForm(s, create).body).toMatchObject({
      allowed_origins: ['https://app.example.com', 'https://*.example.com', 'http://localhost:5173'],
    });
    const none = keyFormReducer(initialKeyForm(undefined, SELF), set('name', 'web'));
    expect(validateKeyForm(none, create).body).not.toHaveProperty('allowed_origins');
    const existing = existingKey({ allowed_origins: ['https://a.example.com'] });
    expect(initialKeyForm(existing, SELF).origins).toBe('https://a.example.com');
  });

  it.each(['app.example.com', 'https://a.com/path', 'https://user@a.com'])('“%s” is refused', (bad) => {
    const s = keyFormReducer(
      keyFormReducer(initialKeyForm(undefined, SELF), set('name', 'web')),
      set('origins', bad),
    );
    const r = validateKeyForm(s, create);
    expect(r.body).toBeNull();
    expect(r.errors.origins).toContain(bad);
  });

  it('maps the API field to the form field', () => {
    expect(fieldOfParam('allowed_origins')).toBe('origins');
  });
});

describe('budget', () => {
  it('“ten” is refused', () => {
    const r = validateKeyForm(form(set('name', 'k'), setBudget('amount', 'ten')), create);
    expect(r.body).toBeNull();
    expect(r.errors).toEqual({ budget: expect.stringMatching(/US dollars/) });
  });

  it('is sent as {amount, period} on create, and on edit only when it changes', () => {
    const s = form(set('name', 'k'), setBudget('amount', '5'), setBudget('period', 'daily'));
    expect(validateKeyForm(s, create).body).toEqual({ name: 'k', budget: { amount: 5, period: 'daily' } });
    const existing = existingKey({ budget: { amount: 5, period: 'daily' } });
    const same = validateKeyForm(initialKeyForm(existing, SELF), { ...create, existing }).body!;
    expect('budget' in same).toBe(false);
    const cleared = keyFormReducer(initialKeyForm(existing, SELF), setBudget('amount', ''));
    expect(validateKeyForm(cleared, { ...create, existing }).body!.budget).toBeNull();
  });
});

describe('fieldOfParam', () => {
  it('maps the API field (and its index) to the form field', () => {
    expect(fieldOfParam('allowed_ips[2]')).toBe('ips');
    expect(fieldOfParam('expires_at')).toBe('expires');
    expect(fieldOfParam('models.0')).toBe('models');
    expect(fieldOfParam('user_id')).toBeUndefined();
  });
});
