// Generates the console's API types (web/src/api-types.ts) from the management API's OpenAPI
// document, built in-process (src/app.ts `openApiDocument`: no database, no listener). Every
// schema with a `title` (the answer schemas beside each domain's routes) becomes one exported
// type; a titled schema inside another is referenced by its name.
//
//   npm run gen:api-types            writes web/src/api-types.ts
//   test/architecture/api-types.test.ts fails when the file is out of date with the document
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '../src/app.js';

export const API_TYPES_FILE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../web/src/api-types.ts',
);

interface Schema {
  title?: string;
  description?: string;
  type?: string;
  format?: string;
  nullable?: boolean;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** Every titled schema in the document, by title; one title must always mean one shape. */
function titledSchemas(doc: unknown): Map<string, Schema> {
  const found = new Map<string, Schema>();
  const visit = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!isObject(node)) return;
    if (typeof node.title === 'string' && (node.type !== undefined || node.anyOf !== undefined)) {
      // Where it is used may add a description or make it nullable; the shape must be the same.
      const { description: _d, nullable: _n, ...shape } = node;
      const prior = found.get(node.title);
      if (prior && JSON.stringify(prior) !== JSON.stringify(shape))
        throw new Error(
          `two different schemas are titled ${node.title}:\n${JSON.stringify(prior)}\n${JSON.stringify(shape)}`,
        );
      found.set(node.title, shape as Schema);
    }
    for (const v of Object.values(node)) visit(v);
  };
  visit(doc);
  return found;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const indent = (depth: number) => '  '.repeat(depth);

function comment(s: Schema, depth: number): string {
  if (!s.description) return '';
  return `${indent(depth)}/** ${s.description.replace(/\*\//g, '*\\/')} */\n`;
}

/** The TypeScript type of a schema; `depth` is the indentation of the line it starts on. */
function tsType(s: Schema, depth: number, top = false): string {
  if (!top && s.title) return s.nullable ? `${s.title} | null` : s.title;
  const base = tsBase(s, depth);
  return s.nullable ? `${base} | null` : base;
}

function tsBase(s: Schema, depth: number): string {
  if (s.enum) return s.enum.map((v) => literal(v)).join(' | ');
  if (s.const !== undefined) return literal(s.const);
  const union = s.anyOf ?? s.oneOf;
  if (union) return union.map((u) => parenthesized(tsType(u, depth))).join(' | ');
  if (s.allOf) return s.allOf.map((u) => parenthesized(tsType(u, depth))).join(' & ');
  switch (s.type) {
    case 'string':
      return 'string';
    case 'number':
    case 'integer':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'array':
      return `${parenthesized(tsType(s.items ?? {}, depth))}[]`;
    case 'object':
      return objectType(s, depth);
    default:
      return 'unknown';
  }
}

function objectType(s: Schema, depth: number, skip: ReadonlySet<string> = new Set()): string {
  const props = Object.entries(s.properties ?? {});
  const extra = s.additionalProperties;
  if (props.length === 0) {
    if (isObject(extra)) return `Record<string, ${tsType(extra, depth)}>`;
    return extra === false ? 'Record<string, never>' : 'Record<string, unknown>';
  }
  const required = new Set(s.required ?? []);
  const lines = props
    .filter(([name]) => !skip.has(name))
    .map(([name, p]) => {
      const key = IDENTIFIER.test(name) ? name : `'${name}'`;
      return `${comment(p, depth + 1)}${indent(depth + 1)}${key}${required.has(name) ? '' : '?'}: ${tsType(p, depth + 1)};`;
    });
  return `{\n${lines.join('\n')}\n${indent(depth)}}`;
}

const parenthesized = (t: string) => (/[|&]/.test(t) && !t.startsWith('{') ? `(${t})` : t);

function literal(v: unknown): string {
  return typeof v === 'string' ? `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'` : JSON.stringify(v);
}

const isInterface = (s: Schema) =>
  s.type === 'object' && !s.nullable && s.properties !== undefined && Object.keys(s.properties).length > 0;

/**
 * The titled schema `s` extends (zod's `.extend()`: the base's properties first, the same ones,
 * then its own), so the type is written once and the extension adds only what is new; the base
 * with the most properties when several fit.
 */
function baseOf(title: string, s: Schema, schemas: Map<string, Schema>): string | undefined {
  const own = Object.keys(s.properties ?? {});
  const required = new Set(s.required ?? []);
  let best: { title: string; size: number } | undefined;
  for (const [baseTitle, base] of schemas) {
    if (baseTitle === title || !isInterface(base)) continue;
    const keys = Object.keys(base.properties!);
    const baseRequired = new Set(base.required ?? []);
    const fits =
      keys.length < own.length &&
      keys.every(
        (k, i) =>
          own[i] === k &&
          required.has(k) === baseRequired.has(k) &&
          JSON.stringify(s.properties![k]) === JSON.stringify(base.properties![k]),
      );
    if (fits && (!best || keys.length > best.size)) best = { title: baseTitle, size: keys.length };
  }
  return best?.title;
}

/** The text of web/src/api-types.ts for the current document. */
export async function generateApiTypes(): Promise<string> {
  const schemas = titledSchemas(await openApiDocument());
  const out = [
    "// GENERATED by scripts/gen-api-types.ts from the management API's OpenAPI document",
    '// (/api/openapi.json): do not edit. Change the answer schemas beside the routes in src/,',
    '// then run `npm run gen:api-types`.',
    '',
  ];
  for (const title of [...schemas.keys()].sort()) {
    const s = schemas.get(title)!;
    const head = comment(s, 0);
    const base = isInterface(s) ? baseOf(title, s, schemas) : undefined;
    if (base) {
      const inherited = new Set(Object.keys(schemas.get(base)!.properties!));
      out.push(`${head}export interface ${title} extends ${base} ${objectType(s, 0, inherited)}`, '');
    } else if (isInterface(s)) out.push(`${head}export interface ${title} ${tsType(s, 0, true)}`, '');
    else out.push(`${head}export type ${title} = ${tsType(s, 0, true)};`, '');
  }
  return out.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = await generateApiTypes();
  fs.writeFileSync(API_TYPES_FILE, text);
  console.log(`wrote ${path.relative(process.cwd(), API_TYPES_FILE)}`);
}
