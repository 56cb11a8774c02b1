// The house rules of docs/architecture.md, checked on the source itself: no import cycle
// between files or between src/ domains, nothing imports main.ts, and each table is read
// and written only by the domain that owns it. A small parser of relative imports and of
// table names in Kysely calls and raw SQL is enough; no dependency is needed.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Owner of each table (docs/architecture.md, "Tables and owners"); db/ defines them all. */
const TABLE_OWNER: Record<string, string> = {
  users: 'accounts',
  sessions: 'accounts',
  meta: 'accounts',
  api_keys: 'keys',
  ephemeral_keys: 'keys',
  audit_log: 'audit',
  prices: 'billing',
  groups: 'billing',
  channels: 'channels',
  logs: 'usage',
  usage_daily: 'usage',
  usage_hourly: 'usage',
  management_tokens: 'tokens',
  events: 'events',
};

/**
 * Known breaks, each in a file another change is rewriting right now (the relay, the ledger,
 * the usage writer). They are listed one by one so nothing new slips in, and the test fails
 * when one disappears, so the list only shrinks.
 */
const ALLOWED_DOMAIN_IMPORTS = new Set<string>([]);
/** Uses of another domain's table, each pinned to its exact code so no other use hides behind it. */
const ALLOWED_TABLE_USES: { file: string; code: string; why: string }[] = [
  {
    file: 'keys/service.ts',
    code: ".innerJoin('users', 'users.id', 'api_keys.user_id')",
    why: "the verifier's cache miss reads the key and its owner's status and group in one query",
  },
];

// ---------------------------------------------------------------------------------------
// The source, parsed

interface SourceFile {
  /** Path relative to src/, with forward slashes. */
  rel: string;
  text: string;
  /** Relative imports, resolved to paths relative to src/. */
  imports: string[];
}

function listFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return listFiles(p);
    return /\.ts$/.test(e.name) && !/\.test\.ts$/.test(e.name) ? [p] : [];
  });
}

/** Strips comments (so prose such as "read from users" is not taken for SQL). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

const IMPORT_RE =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/g;
const DYNAMIC_IMPORT_RE = /\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function relativeImports(text: string): string[] {
  const code = withoutComments(text);
  return [...code.matchAll(IMPORT_RE), ...code.matchAll(DYNAMIC_IMPORT_RE)].map((m) => m[1]!);
}

function readSources(): SourceFile[] {
  return listFiles(SRC).map((abs) => {
    const text = fs.readFileSync(abs, 'utf8');
    const rel = path.relative(SRC, abs).split(path.sep).join('/');
    const imports = relativeImports(text).map((spec) =>
      path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec)).replace(/\.js$/, '.ts'),
    );
    return { rel, text, imports };
  });
}

/** The domain of a file: its folder under src/, or the top-level file's name (app, services, …). */
function domainOf(rel: string): string {
  const parts = rel.split('/');
  return parts.length > 1 ? parts[0]! : parts[0]!.replace(/\.ts$/, '');
}

const TABLE_CALL_RE =
  /\.(?:selectFrom|insertInto|updateTable|deleteFrom|replaceInto|mergeInto|innerJoin|leftJoin|rightJoin|fullJoin)\(\s*['"`](\w+)/g;
const RAW_SQL_RE = /\b(?:from|join|update|into|table)\s+["`]?(\w+)/gi;

/** Tables a file names in Kysely calls, or after FROM / JOIN / UPDATE / INTO in raw SQL. */
function tablesUsed(text: string): string[] {
  const code = withoutComments(text);
  const found = new Set<string>();
  for (const m of code.matchAll(TABLE_CALL_RE)) found.add(m[1]!);
  for (const m of code.matchAll(/\bsql(?:<[^>`]*>)?`([^`]*)`/g)) {
    for (const t of m[1]!.matchAll(RAW_SQL_RE)) found.add(t[1]!);
  }
  return [...found].filter((t) => t in TABLE_OWNER).sort();
}

/** Strongly connected components with more than one member (or a self-loop): the cycles. */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)?.has(v)) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

function addEdge(graph: Map<string, Set<string>>, from: string, to: string) {
  if (!graph.has(from)) graph.set(from, new Set());
  if (!graph.has(to)) graph.set(to, new Set());
  graph.get(from)!.add(to);
}

// ---------------------------------------------------------------------------------------

describe('the parsers', () => {
  it('finds relative imports and exports, type-only and dynamic ones too, never comments', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from '../b/b.js';",
      "export * from '../shared/c.js';",
      "export { d } from './d.js';",
      "import './side-effect.js';",
      "const m = await import('./lazy.js');",
      "import pino from 'pino';",
      "// import { no } from './commented.js';",
    ].join('\n');
    expect(relativeImports(text).sort()).toEqual(
      ['./a.js', '../b/b.js', '../shared/c.js', './d.js', './side-effect.js', './lazy.js'].sort(),
    );
  });

  it('finds tables in Kysely calls and raw SQL, not in comments or other strings', () => {
    const text = [
      "db.selectFrom('api_keys as k').innerJoin('users as u', 'u.id', 'k.user_id')",
      "trx.updateTable('meta').set({ value })",
      'sql`UPDATE logs SET x = 1`',
      'sql<number>`select count(*) from usage_daily`',
      '// we never read from channels here',
      "const label = 'from prices';",
    ].join('\n');
    expect(tablesUsed(text)).toEqual(['api_keys', 'logs', 'meta', 'usage_daily', 'users']);
  });

  it('finds cycles, self-loops included, and nothing in a tree', () => {
    const g = new Map<string, Set<string>>();
    addEdge(g, 'a', 'b');
    addEdge(g, 'b', 'c');
    addEdge(g, 'c', 'a');
    addEdge(g, 'c', 'd');
    addEdge(g, 'e', 'e');
    expect(cycles(g)).toEqual([['a', 'b', 'c'], ['e']]);
    const tree = new Map<string, Set<string>>();
    addEdge(tree, 'a', 'b');
    addEdge(tree, 'a', 'c');
    addEdge(tree, 'b', 'c');
    expect(cycles(tree)).toEqual([]);
  });
});

describe('src/ architecture', () => {
  const files = readSources();
  const known = new Set(files.map((f) => f.rel));

  it('every relative import resolves to a source file', () => {
    const missing = files.flatMap((f) =>
      f.imports.filter((i) => !known.has(i)).map((i) => `${f.rel} -> ${i}`),
    );
    expect(missing).toEqual([]);
  });

  it('has no import cycle between files', () => {
    const graph = new Map<string, Set<string>>();
    for (const f of files) {
      if (!graph.has(f.rel)) graph.set(f.rel, new Set());
      for (const i of f.imports) addEdge(graph, f.rel, i);
    }
    expect(cycles(graph)).toEqual([]);
  });

  it('has no import cycle between domains (apart from the listed, known imports)', () => {
    const graph = new Map<string, Set<string>>();
    const used = new Set<string>();
    for (const f of files) {
      for (const i of f.imports) {
        const [from, to] = [domainOf(f.rel), domainOf(i)];
        if (from === to) continue;
        const edge = `${f.rel} -> ${i}`;
        if (ALLOWED_DOMAIN_IMPORTS.has(edge)) {
          used.add(edge);
          continue;
        }
        addEdge(graph, from, to);
      }
    }
    const found = cycles(graph).map((c) => {
      const why = files.flatMap((f) =>
        f.imports
          .filter((i) => c.includes(domainOf(f.rel)) && c.includes(domainOf(i)))
          .filter((i) => domainOf(i) !== domainOf(f.rel) && !ALLOWED_DOMAIN_IMPORTS.has(`${f.rel} -> ${i}`))
          .map((i) => `${f.rel} -> ${i}`),
      );
      return { domains: c, imports: why };
    });
    expect(found).toEqual([]);
    expect(
      [...ALLOWED_DOMAIN_IMPORTS].filter((e) => !used.has(e)),
      'allow-listed imports that are gone',
    ).toEqual([]);
  });

  it('nothing imports main.ts, and no domain imports the app', () => {
    const wrong = files.flatMap((f) =>
      f.imports
        .filter((i) => i === 'main.ts' || (i === 'app.ts' && f.rel !== 'main.ts'))
        .map((i) => `${f.rel} -> ${i}`),
    );
    expect(wrong).toEqual([]);
  });

  it('each table is used only by the domain that owns it (and db/, which defines them)', () => {
    const unused = ALLOWED_TABLE_USES.filter(
      (a) => !files.some((f) => f.rel === a.file && f.text.includes(a.code)),
    );
    const wrong: string[] = [];
    for (const f of files) {
      const domain = domainOf(f.rel);
      if (domain === 'db') continue;
      const text = ALLOWED_TABLE_USES.filter((a) => a.file === f.rel).reduce(
        (t, a) => t.split(a.code).join(''),
        f.text,
      );
      for (const table of tablesUsed(text)) {
        if (TABLE_OWNER[table] !== domain) wrong.push(`${f.rel}: ${table} (owned by ${TABLE_OWNER[table]})`);
      }
    }
    expect(wrong).toEqual([]);
    expect(unused, 'allow-listed table uses that are gone').toEqual([]);
  });
});
