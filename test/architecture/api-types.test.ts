// The console's API types are generated from the OpenAPI document (scripts/gen-api-types.ts):
// this fails when web/src/api-types.ts is out of date with the answer schemas in src/, so the
// console's types never drift from what the server answers.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../../src/app.js';
import { API_TYPES_FILE, generateApiTypes } from '../../scripts/gen-api-types.js';

describe('the console API types', () => {
  it('web/src/api-types.ts is what `npm run gen:api-types` writes for the current document', async () => {
    const expected = await generateApiTypes();
    expect(fs.readFileSync(API_TYPES_FILE, 'utf8'), 'run `npm run gen:api-types`').toBe(expected);
  });

  it('every JSON answer of the management API is described', async () => {
    const doc = (await openApiDocument()) as {
      paths: Record<string, Record<string, { responses?: Record<string, { content?: unknown }> }>>;
    };
    const undescribed = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => !Object.values(op.responses ?? {}).some((r) => r.content))
        .map(([m]) => `${m.toUpperCase()} ${p}`),
    );
    expect(undescribed).toEqual([]);
  });
});
