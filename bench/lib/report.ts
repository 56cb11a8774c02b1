// Turns a run's raw measurements into the summary (medians over rounds, per-round ratios to
// the bare proxy) and the Markdown report.
import type { Measurement } from './load.js';
import { SCENARIOS } from './load.js';
import type { SlowStreamResult } from './slow-streams.js';
import { fmt, max, median, mib, min } from './stats.js';

/** What bench/scale.ts writes as JSON (its `result`), as far as the report reads it. */
export interface ScaleResult {
  keys: number;
  logRows: number;
  verify: {
    hitPerSec: number;
    hitUs: number;
    checksumOnlyUs: number;
    sha256OnlyUs: number;
    malformedPerSec: number;
    unknownCachedPerSec: number;
    missPerSec: number;
    missUs: number;
    missConcurrent64PerSec: number;
  };
  /** Optional: the report prints its row only when present. */
  admission?: {
    smallUs: number;
    bigUs: number;
    bigPromptTokens: number;
    bigBodyBytes: number;
    /** The big prompt through each ingress protocol's codec (runs before 2026-12-05 22:00: OpenAI only). */
    bigUsByProtocol?: Record<string, number>;
  };
  keyInsert: { rows: number; seconds: number; rowsPerSec: number; dbBytes: number };
  keyCache: {
    cachedEntries: number;
    bulkReadSeconds: number;
    warmSeconds: number;
    warmPerSec: number;
    heapBytesAdded: number;
    rssBytesAdded: number;
    bytesPerEntry: number;
    servicesHeapAtStart: number;
    heapTotalWithAllKeys: number;
    randomHitPerSec: number;
  };
  logIngest: { rows: number; batchRows: number; seconds: number; rowsPerSec: number; enqueueUs: number };
  logBulkInsert: { rows: number; seconds: number; rowsPerSec: number; totalRows: number; dbBytes: number };
  reads: Array<{
    name: string;
    path: string;
    reps: number;
    p50ms: number;
    p99ms: number;
    maxms: number;
    rows: number;
  }>;
}

export interface Summary {
  target: string;
  scenario: string;
  rounds: number;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  /**
   * Median over rounds of (this target's req/s ÷ the faster floor's in the same round), the
   * faster floor being the one of ours and the workplace's that served more over the run (its
   * median ratio to the other): a per-round maximum would pick each round's lucky one. Equal
   * to ratioToBare unless the shared floor ran and was faster.
   */
  ratioToFloor: number;
  /** Median over rounds of (this target's req/s ÷ the bare proxy's req/s in the same round). */
  ratioToBare: number;
  ratioToBareMin: number;
  ratioToBareMax: number;
  /** Same, against Portkey (when it ran). */
  ratioToPortkey: number;
  p50ms: number;
  p99ms: number;
  meanms: number;
  serverCpuUsPerReq: number;
  cpuRatioToBare: number;
  serverCores: number;
  /** The gateway's main thread alone (its event loop), µs per request. */
  serverMainCpuUsPerReq: number;
  /** How busy that thread was: µs per request × req/s, in cores (1.00 = never idle). */
  serverMainBusy: number;
  upstreamCpuUsPerReq: number;
  redisCpuUsPerReq: number;
  postgresCpuUsPerReq: number;
  machineCpuUsPerReq: number;
  bytesPerResponse: number;
  errors: number;
  non2xx: number;
  mismatches: number;
}

export interface RunResult {
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: {
    cpus: number;
    cpuModel: string;
    memGiB: number;
    node: string;
    loadavgStart: number[];
    loadavgEnd: number[];
  };
  commit: string;
  options: Record<string, unknown>;
  targets: string[];
  measurements: Measurement[];
  summary: Summary[];
  peakRss: Record<string, number>;
  moleCheck: { measured2xx: number; loggedRequests: number; billedUsd: number } | null;
  slowStreams: SlowStreamResult[];
  longStreams?: SlowStreamResult[];
  scale: ScaleResult | null;
  notes: string[];
}

export function summarize(ms: Measurement[], targets: string[]): Summary[] {
  const out: Summary[] = [];
  for (const s of SCENARIOS) {
    const rounds = [...new Set(ms.filter((m) => m.scenario === s.id).map((m) => m.round))];
    const at = (target: string, round: number) =>
      ms.find((m) => m.target === target && m.scenario === s.id && m.round === round);
    // The floor (and the peer) only run OpenAI scenarios: a translated row is compared with
    // their pass-through of the same shape in the same round.
    const ref = (target: string, round: number) =>
      ms.find((m) => m.target === target && m.scenario === s.floor && m.round === round);
    for (const t of targets) {
      const mine = ms.filter((m) => m.target === t && m.scenario === s.id);
      if (mine.length === 0) continue;
      const ratio = (other: string) =>
        rounds.map((r) => (at(t, r)?.rps ?? NaN) / (ref(other, r)?.rps ?? NaN));
      const cpuRatio = rounds.map(
        (r) => (at(t, r)?.serverCpuUsPerReq ?? NaN) / (ref('bare', r)?.serverCpuUsPerReq ?? NaN),
      );
      const rb = ratio('bare');
      const sharedOverOurs = median(
        rounds.map((r) => (ref('bare-shared', r)?.rps ?? NaN) / (ref('bare', r)?.rps ?? NaN)),
      );
      const floor = sharedOverOurs > 1 ? 'bare-shared' : 'bare';
      const rf = ratio(floor);
      out.push({
        target: t,
        scenario: s.id,
        rounds: mine.length,
        rps: median(mine.map((m) => m.rps)),
        rpsMin: min(mine.map((m) => m.rps)),
        rpsMax: max(mine.map((m) => m.rps)),
        ratioToFloor: median(rf),
        ratioToBare: median(rb),
        ratioToBareMin: min(rb),
        ratioToBareMax: max(rb),
        ratioToPortkey: targets.includes('portkey') ? median(ratio('portkey')) : NaN,
        p50ms: median(mine.map((m) => m.p50ms)),
        p99ms: median(mine.map((m) => m.p99ms)),
        meanms: median(mine.map((m) => m.meanms)),
        serverCpuUsPerReq: median(mine.map((m) => m.serverCpuUsPerReq)),
        cpuRatioToBare: median(cpuRatio),
        serverCores: median(mine.map((m) => m.serverCores)),
        serverMainCpuUsPerReq: median(mine.map((m) => m.serverMainCpuUsPerReq ?? NaN)),
        serverMainBusy: median(mine.map((m) => ((m.serverMainCpuUsPerReq ?? NaN) * m.rps) / 1e6)),
        upstreamCpuUsPerReq: median(mine.map((m) => m.upstreamCpuUsPerReq)),
        // Runs recorded before these were measured lack them: NaN, shown as –.
        redisCpuUsPerReq: median(mine.map((m) => m.redisCpuUsPerReq ?? NaN)),
        postgresCpuUsPerReq: median(mine.map((m) => m.postgresCpuUsPerReq ?? NaN)),
        machineCpuUsPerReq: median(mine.map((m) => m.machineCpuUsPerReq ?? NaN)),
        bytesPerResponse: median(mine.map((m) => m.bytesPerResponse)),
        errors: mine.reduce((a, m) => a + m.errors + m.timeouts, 0),
        non2xx: mine.reduce((a, m) => a + m.non2xx, 0),
        mismatches: mine.reduce((a, m) => a + m.mismatches, 0),
      });
    }
  }
  return out;
}

const x = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '–');
const ms1 = (v: number) => (Number.isFinite(v) ? (v < 10 ? v.toFixed(1) : v.toFixed(0)) : '–');

/**
 * MoleAPI against the faster of the two floors in each round, when the workplace's floor ran
 * beside ours: a ratio is only as honest as its floor is fast, so where ours was the slower
 * one these are the figures to quote.
 */
function fasterFloorTable(r: RunResult, cols: string[]): string {
  const get = (t: string, s: string) => r.summary.find((x) => x.target === t && x.scenario === s);
  if (!r.targets.includes('bare-shared')) return '';
  const oursVsFaster = cols.map((c) => get('bare', c)?.ratioToFloor ?? NaN);
  let md =
    '\nAgainst the faster floor of the run, ours or `../shared/bench/bare-proxy.mjs`, per scenario (ours ÷ the faster: ' +
    cols.map((c, i) => `${x(oursVsFaster[i]!)} ${c}`).join(', ') +
    '):\n\n';
  md += '| target | ' + cols.map((c) => `${c} × floor`).join(' | ') + ' |\n';
  md += '| --- | ' + cols.map(() => '---:').join(' | ') + ' |\n';
  for (const t of r.targets.filter((t) => t.startsWith('mole')))
    md += `| ${t} | ` + cols.map((c) => `**${x(get(t, c)?.ratioToFloor ?? NaN)}**`).join(' | ') + ' |\n';
  return md;
}

/** The headline table: req/s and ratio to bare, per target, plain and streaming, 1 and 50 connections. */
export function headlineTable(r: RunResult): string {
  const get = (t: string, s: string) => r.summary.find((x) => x.target === t && x.scenario === s);
  const cols = ['plain-c1', 'plain-c50', 'stream-c1', 'stream-c50'];
  /** A table with a row per target and two columns per scenario: a value and its ratio to bare. */
  const perTarget = (unit: string, cells: (t: string, s: Summary) => string) => {
    let table = '| target | ' + cols.map((c) => `${c} ${unit} | × bare`).join(' | ') + ' |\n';
    table += '| --- | ' + cols.map(() => '---: | ---:').join(' | ') + ' |\n';
    for (const t of r.targets) {
      table +=
        `| ${t} | ` +
        cols
          .map((c) => {
            const s = get(t, c);
            return s ? cells(t, s) : '– | –';
          })
          .join(' | ') +
        ' |\n';
    }
    return table;
  };
  let md = perTarget(
    'req/s',
    (t, s) => `${fmt(s.rps)} | ${t === 'bare' ? '1.00×' : `**${x(s.ratioToBare)}**`}`,
  );
  if (r.targets.includes('portkey')) {
    for (const t of r.targets.filter((t) => t.startsWith('mole'))) {
      md +=
        `| ${t} ÷ portkey | ` +
        cols
          .map((c) => {
            const s = get(t, c);
            return s ? `${x(s.ratioToPortkey)} | ` : '– | ';
          })
          .join(' | ') +
        ' |\n';
    }
  }
  md += fasterFloorTable(r, cols);
  md +=
    "\nServer CPU per request (µs, median over rounds) and its ratio to the bare proxy's (per round, median) — steadier than req/s on a shared machine:\n\n";
  md += perTarget(
    'µs/req',
    (t, s) => `${fmt(s.serverCpuUsPerReq)} | ${t === 'bare' ? '1.00×' : x(s.cpuRatioToBare)}`,
  );
  md += machineTable(r);
  const c1 = ['plain-c1', 'stream-c1'].filter((c) => get('bare', c));
  if (c1.length) {
    // Little's law at one connection: mean latency = 1 / req/s, exact; what a proxy adds is
    // its mean minus the floor's (or the upstream's alone), per request.
    const meanUs = (t: string, c: string) => {
      const s = get(t, c);
      return s ? 1e6 / s.rps : NaN;
    };
    md +=
      '\nAdded latency at one connection (mean µs per request over the floor and over the mock alone, from req/s; p99 from autocannon, 1 ms resolution):\n\n';
    md +=
      '| target | ' +
      c1.map((c) => `${c} mean µs | + over bare | + over direct | p99 ms`).join(' | ') +
      ' |\n';
    md += '| --- | ' + c1.map(() => '---: | ---: | ---: | ---:').join(' | ') + ' |\n';
    for (const t of r.targets.filter((t) => t !== 'direct'))
      md +=
        `| ${t} | ` +
        c1
          .map((c) =>
            get(t, c)
              ? `${fmt(meanUs(t, c))} | ${t === 'bare' ? '–' : `**${fmt(meanUs(t, c) - meanUs('bare', c))}**`} | ${fmt(meanUs(t, c) - meanUs('direct', c))} | ${ms1(get(t, c)!.p99ms)}`
              : '– | – | – | –',
          )
          .join(' | ') +
        ' |\n';
  }
  const tr = r.summary.filter((x) => x.scenario.startsWith('msgs-'));
  if (tr.length) {
    md +=
      "\nTranslation path: Anthropic Messages in (`POST /v1/messages`) → an OpenAI channel, 50 connections; ratios against the floor's OpenAI pass-through of the same shape (plain / stream) in the same round, and against MoleAPI's own pass-through:\n\n";
    md += '| target | scenario | req/s | × bare | × own pass-through | server CPU µs/req | CPU × bare |\n';
    md += '| --- | --- | ---: | ---: | ---: | ---: | ---: |\n';
    for (const s of tr) {
      const own = get(s.target, s.scenario.replace(/^msgs-/, ''));
      md += `| ${s.target} | ${s.scenario} | ${fmt(s.rps)} | **${x(s.ratioToBare)}** | ${own ? x(s.rps / own.rps) : '–'} | ${fmt(s.serverCpuUsPerReq)} | ${x(s.cpuRatioToBare)} |\n`;
    }
  }
  const direct = r.summary.filter((x) => x.target === 'direct');
  if (direct.length) {
    md += `\nThe mock upstream is not the bottleneck: measured directly (no proxy) it serves ${direct
      .map(
        (d) =>
          `${d.scenario} ${fmt(d.rps)} req/s (${x(d.ratioToBare)} the floor) at ${fmt(d.serverCpuUsPerReq)} µs CPU/req`,
      )
      .join(
        '; ',
      )}. Its CPU per request while serving each proxy is the "upstream CPU µs/req" column below.\n`;
  }
  return md;
}

/**
 * The whole machine's CPU per request at 50 connections, and whose it is: the proxy, the mock
 * upstream, Redis and PostgreSQL, and the rest (the load generator, the kernel). Every process
 * shares the same cores, so a proxy's throughput follows this total, not its own CPU alone.
 */
function machineTable(r: RunResult): string {
  const cols = ['plain-c50', 'stream-c50'];
  const rows = r.targets
    .filter((t) => t !== 'direct')
    .flatMap((t) => cols.map((c) => r.summary.find((x) => x.target === t && x.scenario === c)))
    .filter((s): s is Summary => s !== undefined && Number.isFinite(s.machineCpuUsPerReq));
  if (!rows.length) return '';
  let md =
    '\nThe whole machine per request at 50 connections (µs CPU, median over rounds): every process shares the same cores, so throughput follows this total unless one thread is the bottleneck. "Rest" is the load generator and the kernel. "Main thread" is the proxy\'s event loop alone (part of "proxy"), and "busy" how much of one core it used: near 1.00 it, not the machine, caps throughput:\n\n';
  md +=
    '| target | scenario | machine | × bare | proxy | main thread | busy | upstream | Redis | PostgreSQL | rest |\n';
  md += '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
  for (const s of rows) {
    const bare = r.summary.find((x) => x.target === 'bare' && x.scenario === s.scenario);
    const rest =
      s.machineCpuUsPerReq -
      s.serverCpuUsPerReq -
      s.upstreamCpuUsPerReq -
      s.redisCpuUsPerReq -
      s.postgresCpuUsPerReq;
    md += `| ${s.target} | ${s.scenario} | ${fmt(s.machineCpuUsPerReq)} | ${bare ? x(s.machineCpuUsPerReq / bare.machineCpuUsPerReq) : '–'} | ${fmt(s.serverCpuUsPerReq)} | ${fmt(s.serverMainCpuUsPerReq)} | ${Number.isFinite(s.serverMainBusy) ? s.serverMainBusy.toFixed(2) : '–'} | ${fmt(s.upstreamCpuUsPerReq)} | ${fmt(s.redisCpuUsPerReq)} | ${fmt(s.postgresCpuUsPerReq)} | ${fmt(rest)} |\n`;
  }
  return md;
}

export function renderMarkdown(r: RunResult): string {
  let md = `# MoleAPI benchmark — ${r.startedAt.slice(0, 19).replace('T', ' ')} UTC\n\n`;
  md += `- command: \`${r.command}\`\n`;
  md += `- commit: ${r.commit}\n`;
  md += `- machine: ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memGiB} GiB, Node ${r.machine.node}; load average ${r.machine.loadavgStart.map((v) => v.toFixed(2)).join(' ')} at start, ${r.machine.loadavgEnd.map((v) => v.toFixed(2)).join(' ')} at end\n`;
  md += `- load: autocannon, \`POST /v1/chat/completions\` (gpt-4o-mini, 1 short user message, max_tokens 16; streams get 16 one-token events + finish + [DONE]), ${r.options.rounds} interleaved rounds (target order rotated each round) × ${r.options.duration} s per target and scenario; medians over rounds, ratios computed per round then the median (min–max in the full table)\n`;
  md += `- latency: mean = connections ÷ req/s (exact); p50/p99 come from autocannon's histogram, which has 1 ms resolution\n- every server runs in its own process on 127.0.0.1; CPU is utime+stime from /proc/<pid>/stat; the upstream is test/mock-provider\n\n`;

  md += `## Headline\n\n${headlineTable(r)}\n`;

  md += `## All load measurements\n\n`;
  md +=
    '| scenario | target | req/s (median, min–max) | × bare (median, min–max) | mean ms | p50 ms | p99 ms | server CPU µs/req | CPU × bare | server cores used | upstream CPU µs/req | bytes/resp | errors / non-2xx / bad body |\n';
  md += '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
  for (const s of r.summary) {
    md += `| ${s.scenario} | ${s.target} | ${fmt(s.rps)} (${fmt(s.rpsMin)}–${fmt(s.rpsMax)}) | ${s.target === 'bare' ? '1.00×' : `${x(s.ratioToBare)} (${x(s.ratioToBareMin)}–${x(s.ratioToBareMax)})`} | ${s.meanms.toFixed(2)} | ${ms1(s.p50ms)} | ${ms1(s.p99ms)} | ${fmt(s.serverCpuUsPerReq)} | ${s.target === 'bare' ? '1.00×' : x(s.cpuRatioToBare)} | ${s.serverCores.toFixed(2)} | ${fmt(s.upstreamCpuUsPerReq)} | ${fmt(s.bytesPerResponse)} | ${s.errors} / ${s.non2xx} / ${s.mismatches} |\n`;
  }
  if (r.targets.some((t) => t.includes('-pg')))
    md += `\nFor mole-pg-redis, "server CPU" is the gateway process only; PostgreSQL's and Redis's own processes are not counted.\n`;
  md += `\nPeak RSS over the whole load phase (VmHWM): ${Object.entries(r.peakRss)
    .map(([k, v]) => `${k} ${mib(v)}`)
    .join(', ')}.\n\n`;
  if (r.moleCheck) {
    md += `MoleAPI accounting check: the measured runs completed ${fmt(r.moleCheck.measured2xx)} requests with 2xx; \`GET /api/usage\` reports ${fmt(r.moleCheck.loggedRequests)} logged requests for the bench key (including warm-up and sanity requests, and requests still in flight when a run stopped) and ${r.moleCheck.billedUsd.toFixed(4)} USD billed.\n\n`;
  }

  if (r.slowStreams.length) {
    const s0 = r.slowStreams[0]!;
    md += `## ${fmt(s0.streams)} concurrent slow streams\n\n`;
    md += s0.tokens
      ? `Upstream streams ${s0.tokens} tokens with ${s0.chunkDelayMs / 1000} s between events (~${(((s0.tokens + 3) * s0.chunkDelayMs) / 1000).toFixed(0)} s per stream, like a slow model holding the connection); the clients (a separate process, one connection each) open ${fmt(s0.rampPerSec)} streams per second until all ${fmt(s0.streams)} are open, so all of them overlap; cut off after ${fmt(Number(r.options.streamLimitMs) / 1000)} s. "Most streaming at once" counts streams that had their first byte and had not ended; "RSS per open request" is (peak − before) ÷ requests not refused.\n\n`
      : `(Older run: 16 tokens, ${s0.chunkDelayMs} ms between events, every client started at once — a connection storm; first-byte times are from the start of the client process, and the per-stream figure is RSS growth ÷ most streaming at once.)\n\n`;
    md +=
      '| target | completed | unfinished at cut-off | failed | most streaming at once | server RSS before → peak | RSS per open request | peak fds | first byte p50 / p99 s | duration of completed p50 s |\n';
    md += '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
    for (const s of r.slowStreams) {
      const errs = Object.entries(s.client.errors)
        .filter(([k]) => k !== 'unfinished')
        .map(([k, v]) => `${v}× ${k.slice(0, 40)}`)
        .join('; ');
      md += `| ${s.target} | ${fmt(s.client.completed)} | ${fmt(s.client.unfinished)} | ${fmt(s.client.failed)}${errs ? ` (${errs})` : ''} | ${fmt(s.client.maxConcurrentStreaming)} | ${mib(s.rssBeforeBytes)} → ${mib(s.rssPeakBytes)} | ${fmt(s.bytesPerStream / 1024)} KiB | ${fmt(s.fdPeak)} | ${(s.client.ttfbMs.p50 / 1000).toFixed(1)} / ${(s.client.ttfbMs.p99 / 1000).toFixed(1)} | ${s.client.durationMs ? (s.client.durationMs.p50 / 1000).toFixed(1) : '–'} |\n`;
    }
    md += '\n';
  }

  if (r.longStreams?.length) {
    md += `## Long streams\n\n100 concurrent streams of 1,000 tokens (one event every 10 ms, ~10 s each), opened at 200 per second: the memory a proxy holds that grows with the length of a stream.\n\n`;
    md +=
      '| target | completed | most streaming at once | bytes per stream received | server RSS before → peak | RSS growth per stream |\n| --- | ---: | ---: | ---: | ---: | ---: |\n';
    for (const s of r.longStreams)
      md += `| ${s.target} | ${fmt(s.client.completed)} | ${fmt(s.client.maxConcurrentStreaming)} | ${fmt(s.client.bytesPerStream ?? NaN)} | ${mib(s.rssBeforeBytes)} → ${mib(s.rssPeakBytes)} | ${fmt(s.bytesPerStream / 1024)} KiB |\n`;
    md += '\n';
  }

  if (r.scale) {
    const sc = r.scale;
    md += `## Micro and scale (SQLite, in-process; bench/scale.ts)\n\n`;
    md += '| measurement | result |\n| --- | ---: |\n';
    md += `| key verification, cache hit | ${fmt(sc.verify.hitPerSec)} /s (${sc.verify.hitUs.toFixed(2)} µs; of which checksum ${sc.verify.checksumOnlyUs.toFixed(2)} µs, SHA-256 ${sc.verify.sha256OnlyUs.toFixed(2)} µs) |\n`;
    md += `| key verification, cache miss (DB lookup) | ${fmt(sc.verify.missPerSec)} /s sequential (${fmt(sc.verify.missUs)} µs); ${fmt(sc.verify.missConcurrent64PerSec)} /s with 64 in flight |\n`;
    if (sc.admission)
      md += `| request admission estimate (parse body + count prompt tokens locally) | ${sc.admission.smallUs.toFixed(1)} µs for the benchmark's tiny prompt; for a ${fmt(sc.admission.bigPromptTokens)}-token prompt (${fmt(sc.admission.bigBodyBytes / 1024)} KiB body) ${Object.entries(
        sc.admission.bigUsByProtocol ?? { openai: sc.admission.bigUs },
      )
        .map(([p, us]) => `${p} ${fmt(us)} µs`)
        .join(', ')} |\n`;
    md += `| unknown well-formed key (negative cache) / malformed key | ${fmt(sc.verify.unknownCachedPerSec)} /s / ${fmt(sc.verify.malformedPerSec)} /s |\n`;
    md += `| insert ${fmt(sc.keyInsert.rows)} key rows (generate + SHA-256 + SQLite insert) | ${sc.keyInsert.seconds.toFixed(1)} s (${fmt(sc.keyInsert.rowsPerSec)} rows/s), DB ${mib(sc.keyInsert.dbBytes)} |\n`;
    md += `| hold ${fmt(sc.keyCache.cachedEntries)} keys in the verifier cache | +${mib(sc.keyCache.heapBytesAdded)} heap (${fmt(sc.keyCache.bytesPerEntry)} B/key); services at start with the LRU sized for them: ${mib(sc.keyCache.servicesHeapAtStart)}; total ${mib(sc.keyCache.heapTotalWithAllKeys)} |\n`;
    md += `| warm that cache (verify each key once, DB rows from one bulk read) | ${sc.keyCache.warmSeconds.toFixed(1)} s (${fmt(sc.keyCache.warmPerSec)} /s); cold via per-key DB lookups it would take ≈ ${fmt(sc.keyCache.cachedEntries / sc.verify.missPerSec)} s at the miss rate above |\n`;
    md += `| cache hits spread over all ${fmt(sc.keyCache.cachedEntries)} keys | ${fmt(sc.keyCache.randomHitPerSec)} /s |\n`;
    md += `| log ingestion (usageWriter.enqueue + flush, ${fmt(sc.logIngest.batchRows)}-row batches) | ${fmt(sc.logIngest.rowsPerSec)} rows/s; enqueue alone ${sc.logIngest.enqueueUs.toFixed(2)} µs/row |\n`;
    md += `| bulk insert ${fmt(sc.logBulkInsert.rows)} log rows + rollups (direct SQL) | ${sc.logBulkInsert.seconds.toFixed(1)} s (${fmt(sc.logBulkInsert.rowsPerSec)} rows/s); logs table ${fmt(sc.logBulkInsert.totalRows)} rows, DB ${mib(sc.logBulkInsert.dbBytes)} |\n`;
    md += `\nManagement reads over ${fmt(sc.logBulkInsert.totalRows)} log rows (real HTTP against the real app, master key, sequential):\n\n`;
    md += '| query | p50 ms | p99 ms | max ms | rows returned |\n| --- | ---: | ---: | ---: | ---: |\n';
    for (const q of sc.reads)
      md += `| ${q.name} — \`${q.path
        .replace(/key_id=\d+/, 'key_id=…')
        .replace(/from=[^&]+/, 'from=…')
        .replace(/to=[^&]+/, 'to=…')
        .replace(
          /cursor=\d+/,
          'cursor=…',
        )}\` | ${ms1(q.p50ms)} | ${ms1(q.p99ms)} | ${ms1(q.maxms)} | ${q.rows} |\n`;
    md += '\n';
  }
  if (r.notes.length) md += `## Notes\n\n${r.notes.map((n) => `- ${n}`).join('\n')}\n`;
  return md;
}
