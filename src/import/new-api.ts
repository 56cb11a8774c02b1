// `mole import new-api`: carries a new-api or one-api database over into MoleAPI (contract
// §10). Reads their own schema (users, tokens, channels, options: model/*.go in
// QuantumNous/new-api and songquanpeng/one-api) and writes through each domain's import
// functions: accounts (users), keys (tokens), channels, billing (prices, groups).
//
// Re-running imports nothing twice: users, keys and channels carry their source row's marker
// (`import_source`), keys are also known by their hash, prices and groups by name (existing ones
// are never overwritten). `dryRun` reads and decides everything and writes nothing.
import { importUser, importedUsers, findUserForImport } from '../accounts/import.js';
import { createAuditService } from '../audit/service.js';
import { importGroup, importPrice, knownGroups, pricedModels } from '../billing/import.js';
import { MAX_NANO, multiplierToPpm, NANO_PER_USD } from '../billing/money.js';
import {
  importChannel,
  importedChannelSources,
  type ImportedChannel,
  opensSealedChannels,
} from '../channels/import.js';
import type { SecretBox } from '../channels/secretbox.js';
import type { ChannelType } from '../channels/service.js';
import type { Db } from '../db/index.js';
import { hashKey } from '../keys/format.js';
import { importedKeySources, importKey, knownKeyHashes, type ImportedKey } from '../keys/import.js';
import type { Invalidation } from '../shared/bus.js';
import { CidrSet } from '../shared/cidr.js';
import type { Row, SourceDb } from './source.js';

/** new-api's default: 500 × 1000 quota units per USD ("$0.002 / 1K tokens"; common/constants.go). */
export const DEFAULT_QUOTA_PER_UNIT = 500_000;
/** The audit trail's actor for what an import created. */
export const IMPORT_ACTOR = 'import';

/** new-api `constant/channel.go` types this gateway speaks, and names of some it does not. */
const CHANNEL_TYPES: Record<number, ChannelType> = { 1: 'openai', 14: 'anthropic', 24: 'gemini' };
const TYPE_NAMES: Record<number, string> = {
  0: 'unknown',
  2: 'Midjourney',
  3: 'Azure',
  4: 'Ollama',
  5: 'Midjourney-Plus',
  8: 'Custom',
  11: 'PaLM',
  15: 'Baidu',
  16: 'Zhipu',
  17: 'Ali',
  18: 'Xunfei',
  19: '360',
  20: 'OpenRouter',
  23: 'Tencent',
  25: 'Moonshot',
  26: 'Zhipu v4',
  27: 'Perplexity',
  31: 'LingYiWanWu',
  33: 'AWS',
  34: 'Cohere',
  35: 'MiniMax',
  36: 'SunoAPI',
  37: 'Dify',
  38: 'Jina',
  39: 'Cloudflare',
  40: 'SiliconFlow',
  41: 'VertexAI',
  42: 'Mistral',
  43: 'DeepSeek',
  44: 'MokaAI',
  45: 'VolcEngine',
  46: 'Baidu v2',
  47: 'Xinference',
  48: 'xAI',
  49: 'Coze',
  50: 'Kling',
  51: 'Jimeng',
};
/** `constant.ChannelBaseURLs[type]` when a channel's base_url is empty. */
const DEFAULT_BASE_URL: Record<ChannelType, string> = {
  openai: 'https://api.openai.com',
  anthropic: 'https://api.anthropic.com',
  gemini: 'https://generativelanguage.googleapis.com',
  mock: '',
};

const USERNAME = /^[A-Za-z0-9._@-]{1,64}$/;
const BCRYPT = /^\$2[aby]\$\d{2}\$[./0-9A-Za-z]{53}$/;
const TOKEN_KEY = /^[0-9A-Za-z]{48}$/;
/** A password hash nothing verifies against: the account cannot sign in until an admin sets one. */
const NO_PASSWORD = '!imported-without-password';
const PAGE = 500;

export interface TableCounts {
  table: string;
  imported: number;
  skipped: number;
  /** Why rows were skipped: reason → count. */
  reasons: Record<string, number>;
}

export interface ImportReport {
  dryRun: boolean;
  quotaPerUnit: number;
  tables: TableCounts[];
  /** Things said once (an option that was not saved, so new-api's defaults applied). */
  notes: string[];
}

export interface ImportOptions {
  source: SourceDb;
  db: Db;
  box: SecretBox;
  dryRun: boolean;
  /** Announces what changed, so running gateways reload (their bus, or Redis). */
  publish?: (msg: Invalidation) => void;
  /** A progress line for large tables. */
  progress?: (line: string) => void;
  now?: number;
}

// Values as the three drivers hand them over: numbers may be strings (bigint), booleans 0/1,
// true/false or 't'.
const num = (v: unknown, dflt = 0): number => {
  if (v === null || v === undefined || v === '') return dflt;
  const n = Number(v);
  return Number.isFinite(n) ? n : dflt;
};
const str = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
const bool = (v: unknown): boolean => v === true || v === 1 || v === '1' || v === 't' || v === 'true';
const deleted = (r: Row) => r.deleted_at !== null && r.deleted_at !== undefined && r.deleted_at !== '';
const commaList = (v: unknown) => [
  ...new Set(
    str(v)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ),
];

function jsonObject(v: unknown): Record<string, unknown> | null {
  const s = str(v).trim();
  if (!s) return null;
  try {
    const o = JSON.parse(s) as unknown;
    return o && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

class Counter {
  readonly counts: TableCounts;
  constructor(table: string) {
    this.counts = { table, imported: 0, skipped: 0, reasons: {} };
  }
  ok() {
    this.counts.imported++;
  }
  skip(reason: string) {
    this.counts.skipped++;
    this.counts.reasons[reason] = (this.counts.reasons[reason] ?? 0) + 1;
  }
}

export async function importNewApi(o: ImportOptions): Promise<ImportReport> {
  const now = o.now ?? Date.now();
  const notes: string[] = [];
  const tables: TableCounts[] = [];
  const write = async (fn: (trx: Db) => Promise<void>) => {
    if (!o.dryRun) await o.db.transaction().execute(fn);
  };
  // Each row the import creates is audited as the API's creation would be, by actor `import`,
  // in the transaction that writes it: who made a key shows in its trail.
  const audit = createAuditService(o.db);
  const audited = (
    trx: Db,
    action: string,
    changes: Record<string, unknown>,
    ids: { keyId?: number; userId?: number } = {},
  ) => audit.record({ actor: IMPORT_ACTOR, action, ...ids, changes }, trx);

  // Refused before anything is written: a source that is not new-api's or one-api's, and a
  // secret that would seal channels the gateway cannot open.
  const present = await Promise.all(
    ['users', 'tokens', 'channels'].map(async (t) => (await o.source.columns(t)).size > 0),
  );
  if (!present.some(Boolean))
    throw new Error('the source holds no new-api or one-api tables (users, tokens, channels)');
  if (present[2] && !(await opensSealedChannels(o.db, o.box)))
    throw new Error(
      "MOLE_SECRET is not the secret this database's channels are sealed with: imported channels could not be read by the gateway. Run the import with the gateway's MOLE_SECRET.",
    );

  // -- options: QuotaPerUnit and the ratio settings (a saved row replaces new-api's default)
  const options = new Map<string, string>();
  if ((await o.source.columns('options')).size > 0)
    for (const r of await o.source.all('options')) options.set(str(r.key), str(r.value));
  else notes.push('no options table: QuotaPerUnit 500000 assumed, no prices or groups imported');
  const qpuRaw = options.get('QuotaPerUnit');
  const quotaPerUnit = qpuRaw && num(qpuRaw) > 0 ? num(qpuRaw) : DEFAULT_QUOTA_PER_UNIT;
  /** Quota units → nano-USD, or null beyond what the ledger holds. */
  const unitsToNano = (units: number): number | null => {
    const nano = Math.round((units * NANO_PER_USD) / quotaPerUnit);
    return Number.isSafeInteger(nano) && Math.abs(nano) <= MAX_NANO ? nano : null;
  };

  // Pages through a table, by id, with a progress line when it is large.
  async function* rowsOf(table: string): AsyncGenerator<Row[]> {
    const total = await o.source.count(table);
    let after = 0;
    let seen = 0;
    for (;;) {
      const page = await o.source.page(table, after, PAGE);
      if (page.length === 0) break;
      yield page;
      seen += page.length;
      after = num(page[page.length - 1]!.id);
      if (total > 2 * PAGE) o.progress?.(`${table}: ${seen}/${total}`);
    }
  }

  // -- users
  const users = new Counter('users');
  /** Source user id → MoleAPI user id (negative: would be created, in a dry run) and group. */
  const owners = new Map<number, { id: number; group: string }>();
  if ((await o.source.columns('users')).size === 0) notes.push('no users table');
  else {
    const already = await importedUsers(o.db);
    const namesThisRun = new Set<string>();
    for await (const page of rowsOf('users')) {
      const inserts: { sourceId: number; group: string; user: Parameters<typeof importUser>[1] }[] = [];
      for (const r of page) {
        const sourceId = num(r.id);
        const source = `new-api:users:${sourceId}`;
        const group = str(r.group).trim() || 'default';
        if (deleted(r)) {
          users.skip('deleted');
          continue;
        }
        const prior = already.get(source);
        if (prior?.deleted) {
          users.skip('imported before, since deleted here');
          continue;
        }
        // Source ids are per database: the same id under another name is another person (a
        // second new-api database, say), whose keys must not land in this account.
        if (prior !== undefined && prior.username.toLowerCase() !== str(r.username).trim().toLowerCase()) {
          users.skip('its id was imported before for another username');
          continue;
        }
        if (prior !== undefined) {
          owners.set(sourceId, { id: prior.id, group });
          users.skip('already imported');
          continue;
        }
        const username = str(r.username).trim();
        if (!USERNAME.test(username)) {
          users.skip('username not allowed (letters, digits, . _ @ - only)');
          continue;
        }
        if (namesThisRun.has(username.toLowerCase()) || (await findUserForImport(o.db, username))) {
          users.skip('username already taken');
          continue;
        }
        const balanceNano = unitsToNano(num(r.quota));
        if (balanceNano === null) {
          users.skip('balance too large');
          continue;
        }
        const role = num(r.role, 1);
        const password = str(r.password);
        namesThisRun.add(username.toLowerCase());
        inserts.push({
          sourceId,
          group,
          user: {
            username,
            passwordHash: BCRYPT.test(password) ? password : NO_PASSWORD,
            role: role >= 10 ? 'admin' : 'user',
            group,
            balanceNano,
            status: num(r.status, 1) === 1 ? 'active' : 'disabled',
            source,
          },
        });
      }
      for (const i of inserts) owners.set(i.sourceId, { id: -i.sourceId, group: i.group });
      await write(async (trx) => {
        for (const i of inserts) {
          const id = await importUser(trx, i.user, now);
          owners.set(i.sourceId, { id, group: i.group });
          const { username, role, group, status, source } = i.user;
          await audited(trx, 'user.create', { username, role, group, status, source }, { userId: id });
        }
      });
      for (let n = 0; n < inserts.length; n++) users.ok();
    }
  }
  tables.push(users.counts);

  // -- tokens → keys
  const tokens = new Counter('tokens');
  let keysImported = 0;
  const tokenCols = await o.source.columns('tokens');
  if (tokenCols.size === 0) notes.push('no tokens table');
  else {
    const hashesThisRun = new Set<string>();
    for await (const page of rowsOf('tokens')) {
      const candidates: { hash: string; key: Omit<ImportedKey, 'userId'>; owner: number }[] = [];
      for (const r of page) {
        if (deleted(r)) {
          tokens.skip('deleted');
          continue;
        }
        const raw = str(r.key).trim().replace(/^sk-/, '');
        if (!TOKEN_KEY.test(raw)) {
          tokens.skip('key is not 48 letters and digits');
          continue;
        }
        const owner = owners.get(num(r.user_id));
        if (!owner) {
          tokens.skip('owner not imported');
          continue;
        }
        const k = tokenToKey(r, tokenCols, owner.group, unitsToNano, now);
        if (typeof k === 'string') {
          tokens.skip(k);
          continue;
        }
        const secret = `sk-${raw}`;
        const source = `new-api:tokens:${num(r.id)}`;
        candidates.push({ hash: hashKey(secret), key: { ...k, secret, source }, owner: num(r.user_id) });
      }
      const known = await knownKeyHashes(
        o.db,
        candidates.map((c) => c.hash),
      );
      const knownSources = await importedKeySources(
        o.db,
        candidates.map((c) => c.key.source),
      );
      const fresh = candidates.filter((c) => {
        if (known.has(c.hash) || knownSources.has(c.key.source) || hashesThisRun.has(c.hash)) {
          tokens.skip('already imported');
          return false;
        }
        hashesThisRun.add(c.hash);
        return true;
      });
      await write(async (trx) => {
        for (const c of fresh) {
          const userId = owners.get(c.owner)!.id;
          const keyId = await importKey(trx, { ...c.key, userId }, now);
          const { name, status, source } = c.key;
          await audited(trx, 'key.create', { name, status, source }, { keyId, userId });
        }
      });
      for (let n = 0; n < fresh.length; n++) tokens.ok();
      keysImported += fresh.length;
    }
  }
  tables.push(tokens.counts);

  // -- channels
  const channels = new Counter('channels');
  let channelsImported = 0;
  if ((await o.source.columns('channels')).size === 0) notes.push('no channels table');
  else {
    const already = await importedChannelSources(o.db);
    for await (const page of rowsOf('channels')) {
      const fresh: ImportedChannel[] = [];
      for (const r of page) {
        if (deleted(r)) {
          channels.skip('deleted');
          continue;
        }
        const c = channelRows(r);
        if (typeof c === 'string') {
          channels.skip(c);
          continue;
        }
        // A multi-key channel becomes one channel per key; each is counted.
        for (const one of c) {
          if (already.has(one.source)) channels.skip('already imported');
          else fresh.push(one);
        }
      }
      await write(async (trx) => {
        for (const c of fresh) {
          const id = await importChannel(trx, o.box, c, now);
          await audited(trx, 'channel.create', {
            channel_id: id,
            name: c.name,
            type: c.type,
            source: c.source,
          });
        }
      });
      for (let n = 0; n < fresh.length; n++) channels.ok();
      channelsImported += fresh.length;
    }
  }
  tables.push(channels.counts);

  // -- prices: ModelRatio (input; 1 = 2 USD per 1M tokens at QuotaPerUnit 500000) ×
  // CompletionRatio (output / input)
  const prices = new Counter('prices');
  const modelRatio = jsonObject(options.get('ModelRatio'));
  const completionRatio = jsonObject(options.get('CompletionRatio')) ?? {};
  const priced = await pricedModels(o.db);
  const newPrices: { model: string; inputNanoPerM: number; outputNanoPerM: number }[] = [];
  if (!modelRatio)
    notes.push(
      'prices: no ModelRatio option saved in the source (new-api used its built-in ratios); none imported',
    );
  for (const [model, ratioV] of Object.entries(modelRatio ?? {})) {
    const ratio = num(ratioV, Number.NaN);
    const completion = num(completionRatio[model], 1);
    // nano-USD per 1M tokens = 1e6 tokens × ratio quota units / QuotaPerUnit × 1e9.
    const input = Math.round((ratio * 1e15) / quotaPerUnit);
    const output = Math.round((ratio * completion * 1e15) / quotaPerUnit);
    if (!model || model.length > 200) prices.skip('model name unusable');
    else if (!(ratio >= 0) || !(completion >= 0) || input > MAX_NANO || output > MAX_NANO)
      prices.skip('ratio not a usable number');
    else if (priced.has(model)) prices.skip('already priced');
    else newPrices.push({ model, inputNanoPerM: input, outputNanoPerM: output });
  }
  for (const model of Object.keys(jsonObject(options.get('ModelPrice')) ?? {}))
    if (!modelRatio || !(model in modelRatio)) prices.skip('per-request price (ModelPrice) not supported');
  await write(async (trx) => {
    for (const p of newPrices) {
      await importPrice(trx, p.model, p, now);
      await audited(trx, 'price.set', {
        model: p.model,
        input: p.inputNanoPerM / NANO_PER_USD,
        output: p.outputNanoPerM / NANO_PER_USD,
      });
    }
  });
  for (let n = 0; n < newPrices.length; n++) prices.ok();
  tables.push(prices.counts);

  // -- groups: GroupRatio multipliers
  const groups = new Counter('groups');
  const groupRatio = jsonObject(options.get('GroupRatio'));
  const known = await knownGroups(o.db);
  const newGroups: { name: string; ppm: number }[] = [];
  for (const [name, v] of Object.entries(groupRatio ?? {})) {
    const ppm = multiplierToPpm(Math.round(num(v, Number.NaN) * 1e6) / 1e6);
    if (!name || name.length > 64) groups.skip('group name unusable');
    else if (ppm === null) groups.skip('multiplier not a usable number');
    else if (known.has(name)) groups.skip('already present');
    else newGroups.push({ name, ppm });
  }
  await write(async (trx) => {
    for (const g of newGroups) {
      await importGroup(trx, g.name, g.ppm, now);
      await audited(trx, 'group.set', { group: g.name, multiplier: g.ppm / 1e6 });
    }
  });
  for (let n = 0; n < newGroups.length; n++) groups.ok();
  tables.push(groups.counts);

  if (!o.dryRun && o.publish) {
    if (keysImported > 0) o.publish({ kind: 'imported-keys' });
    if (channelsImported > 0) o.publish({ kind: 'channels' });
    if (newPrices.length > 0) o.publish({ kind: 'prices' });
    for (const g of newGroups) o.publish({ kind: 'group', name: g.name });
  }
  return { dryRun: o.dryRun, quotaPerUnit, tables, notes };
}

/** A token row as a key's fields, or why it cannot be imported. */
function tokenToKey(
  r: Row,
  cols: Set<string>,
  ownerGroup: string,
  unitsToNano: (u: number) => number | null,
  now: number,
): Omit<ImportedKey, 'userId' | 'secret' | 'source'> | string {
  // Status: 1 enabled, 2 disabled, 3 expired, 4 exhausted (common/constants.go). Expired and
  // exhausted are derived here from expiry and quota, as MoleAPI derives them.
  const status = num(r.status, 1);
  const used = unitsToNano(Math.max(0, num(r.used_quota)));
  const remain = unitsToNano(Math.max(0, num(r.remain_quota)));
  if (used === null || remain === null || used + remain > MAX_NANO) return 'quota too large';
  let quotaNano: number | null = bool(r.unlimited_quota) ? null : used + remain;
  if (status === 4) quotaNano = used; // marked exhausted: nothing left, whatever the columns say
  const expiredTime = num(r.expired_time, -1);
  let expiresAt: number | null = expiredTime === -1 ? null : expiredTime * 1000;
  if (status === 3 && (expiresAt === null || expiresAt > now)) expiresAt = now;

  // Models: new-api's model_limits when model_limits_enabled; later one-api's `models`.
  let models: string[] | null = null;
  if (cols.has('model_limits')) {
    const list = commaList(r.model_limits);
    if ((!cols.has('model_limits_enabled') || bool(r.model_limits_enabled)) && list.length) models = list;
  } else if (cols.has('models')) {
    const list = commaList(r.models);
    if (list.length) models = list;
  }

  // IPs: new-api's allow_ips, one per line (spaces and commas dropped: GetIpLimits); one-api's subnet, commas.
  let ips: string[] = [];
  if (cols.has('allow_ips'))
    ips = str(r.allow_ips)
      .split('\n')
      .map((s) => s.replace(/[\s,]/g, ''))
      .filter(Boolean);
  else if (cols.has('subnet')) ips = commaList(r.subnet);
  if (ips.length && !CidrSet.parse(ips).ok) return 'allow_ips not understood';

  const group = str(r.group).trim() || null;
  const name = str(r.name).trim().slice(0, 128) || `imported-${num(r.id)}`;
  const created = num(r.created_time);
  return {
    name,
    status: status === 2 || ![1, 2, 3, 4].includes(status) ? 'disabled' : 'active',
    models,
    allowedIps: ips.length ? ips : null,
    quotaNano,
    usedNano: used,
    group,
    // A group other than the owner's was granted to the key (new-api lets only usable groups be chosen).
    groupByAdmin: group !== null && group !== ownerGroup,
    expiresAt,
    createdAt: created > 0 ? created * 1000 : now,
  };
}

/** A channel row as one MoleAPI channel per upstream key, or why it cannot be imported. */
function channelRows(r: Row): ImportedChannel[] | string {
  const typeNo = num(r.type);
  const type = CHANNEL_TYPES[typeNo];
  if (!type) return `type ${typeNo} (${TYPE_NAMES[typeNo] ?? 'other'}) not supported`;
  let baseUrl = str(r.base_url).trim().replace(/\/+$/, '') || DEFAULT_BASE_URL[type];
  if (!/^https?:\/\//i.test(baseUrl)) return 'base_url not an http(s) URL';
  // new-api's base URL is the origin (adaptors add /v1/…); MoleAPI's openai base URL ends in /v1.
  if (type === 'openai' && !/\/v1$/.test(baseUrl)) baseUrl += '/v1';

  // Several keys: newline-separated, or a JSON array (multi-key channels).
  const rawKey = str(r.key).trim();
  let keys: string[];
  if (rawKey.startsWith('[')) {
    try {
      keys = (JSON.parse(rawKey) as unknown[])
        .map((k) => (typeof k === 'string' ? k.trim() : ''))
        .filter(Boolean);
    } catch {
      return 'key not readable';
    }
  } else
    keys = rawKey
      .split('\n')
      .map((k) => k.trim())
      .filter(Boolean);
  if (keys.length === 0) return 'no key';

  let modelMap: Record<string, string> | null = null;
  const mapping = str(r.model_mapping).trim();
  if (mapping && mapping !== '{}') {
    const o = jsonObject(mapping);
    if (!o || Object.values(o).some((v) => typeof v !== 'string')) return 'model_mapping not a JSON object';
    modelMap = Object.keys(o).length ? (o as Record<string, string>) : null;
  }
  const status = num(r.status, 1);
  const id = num(r.id);
  const name = str(r.name).trim().slice(0, 120) || `channel-${id}`;
  return keys.map((apiKey, i) => ({
    name: keys.length > 1 ? `${name} #${i + 1}` : name,
    type,
    baseUrl,
    apiKey,
    models: commaList(r.models),
    modelMap,
    priority: Math.trunc(num(r.priority)),
    // new-api picks within a priority by weight + 10 (model/ability.go): keep the same shares.
    weight: Math.trunc(num(r.weight)) + 10,
    groups: commaList(r.group),
    status: status === 1 ? 'active' : 'disabled',
    disabledReason: status === 3 ? 'imported: auto-disabled in new-api' : 'imported: disabled in new-api',
    source: keys.length > 1 ? `new-api:channels:${id}:${i + 1}` : `new-api:channels:${id}`,
  }));
}
