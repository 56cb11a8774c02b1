// Request bodies sent compressed (Content-Encoding), as Codex sends its Responses bodies (zstd)
// and other clients gzip theirs: decoded before they are read, answered and billed like plain
// ones, and held to the same byte limit once decoded. A small body that decodes to a large one
// is refused (413) without decoding it whole; an unknown coding gets 415, a corrupt body 400.
// The zstd bodies were made with the zstd command (v1.5.4, level 3): Node 20 cannot write zstd.
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer, userWithKey } from '../helpers/server.js';
import {
  countChatPromptTokens,
  expectedChatCompletion,
  type MockProvider,
  startMockProvider,
} from '../mock-provider/server.js';
import { addPricedChannel, allLogs, rawRelay } from './relay-helpers.js';

const LIMIT = 200_000;
const MODEL = 'packed-model';
const MESSAGES = [{ role: 'user', content: 'compressed hello' }];
const BODY = JSON.stringify({ model: MODEL, messages: MESSAGES, max_tokens: 5 });
const ZSTD = {
  /** BODY. */
  body: 'KLUv/SRhlQIAsoUSF5CnOgsKUcNKIgJ+ZRHidy+4XUBI6j+WDXBe9KNrcCDpIWhWxBcI892rlFp8XugLafGw+hp8PqoyC5z3BLL79CjMTyHJZ7zRNAsBAGWYS2GL0PU=',
  /** BODY compressed from a pipe, as a streaming encoder (Codex's) writes it: no size, a 2 MiB window. */
  piped:
    'KLUv/QRYlQIAsoUSF5CnOgsKUcNKIgJ+ZRHidy+4XUBI6j+WDXBe9KNrcCDpIWhWxBcI892rlFp8XugLafGw+hp8PqoyC5z3BLL79CjMTyHJZ7zRNAsBAGWYS2GL0PU=',
  /** Five frames of 60,000 × "a", each declaring its size: 300,000 bytes in all. */
  fiveFrames:
    'KLUv/WRg6VUAABBhYQEAW2odYAHL3g+TKLUv/WRg6VUAABBhYQEAW2odYAHL3g+TKLUv/WRg6VUAABBhYQEAW2odYAHL3g+TKLUv/WRg6VUAABBhYQEAW2odYAHL3g+TKLUv/WRg6VUAABBhYQEAW2odYAHL3g+T',
  /** One frame declaring 1,000,000 bytes. */
  declared: 'KLUv/aRAQg8AVAAAEGFhAQD7/znAAgIAEGECABBhAgAQYQIAEGECABBhAgAQYQMSCmFA3E+b',
  /** The same from a pipe: no declared size, found too large as it decodes. */
  piped1M: 'KLUv/QRYVAAAEGFhAQD7/znAAgIAEGECABBhAgAQYQIAEGECABBhAgAQYQMSCmFA3E+b',
};
const zstd = (b64: string) => Buffer.from(b64, 'base64');

describe('compressed request bodies', () => {
  let mock: MockProvider;
  let s: TestServer;
  let secret: string;
  let keyId: number;
  beforeAll(async () => {
    mock = await startMockProvider();
    s = await startTestServer({ env: { MOLE_MAX_BODY_BYTES: String(LIMIT) } });
    await addPricedChannel(
      s,
      { type: 'openai', base_url: mock.url, api_key: 'x' },
      { [MODEL]: { input: 1, output: 2 } },
    );
    const made = await userWithKey(s, { balance: 10 });
    secret = made.secret;
    keyId = made.key.id as number;
  });
  afterAll(async () => {
    await s?.close();
    await mock?.close();
  });

  const send = (body: Buffer | string, encoding: string, path = '/chat/completions') =>
    rawRelay(s, path, { key: secret, body, headers: { 'content-encoding': encoding } });

  it('gzip, deflate (zlib or raw), br, zstd and layered codings: answered and billed as the plain body', async () => {
    const plain = Buffer.from(BODY);
    const cases: Array<[string, Buffer]> = [
      ['gzip', zlib.gzipSync(plain)],
      ['x-gzip', zlib.gzipSync(plain)],
      ['deflate', zlib.deflateSync(plain)],
      ['deflate', zlib.deflateRawSync(plain)],
      ['br', zlib.brotliCompressSync(plain)],
      ['zstd', zstd(ZSTD.body)],
      // Its 2 MiB window is a buffer, larger than the 200 KB limit: the body is 97 bytes.
      ['zstd', zstd(ZSTD.piped)],
      ['ZSTD', zstd(ZSTD.body)],
      // Listed in the order applied: gzip first, then br.
      ['gzip, br', zlib.brotliCompressSync(zlib.gzipSync(plain))],
      ['identity', plain],
    ];
    for (const [encoding, body] of cases) {
      const r = await send(body, encoding);
      expect(r.status, `${encoding}: ${r.text}`).toBe(200);
      expect(r.json.choices[0].message.content).toBe(expectedChatCompletion(MESSAGES, 5));
    }
    await s.services.flush();
    const logs = await allLogs(s, { key_id: keyId });
    const served = logs.filter((l) => l.status === 200);
    expect(served).toHaveLength(cases.length);
    for (const l of served)
      expect(l).toMatchObject({
        model: MODEL,
        prompt_tokens: countChatPromptTokens(MESSAGES),
        completion_tokens: 5,
      });
  });

  it('what decodes past the body limit is refused 413, zstd from its frame headers', async () => {
    const bombs: Array<[string, Buffer]> = [
      ['gzip', zlib.gzipSync(Buffer.alloc(LIMIT * 3, ' '))],
      ['br', zlib.brotliCompressSync(Buffer.alloc(LIMIT * 3, ' '))],
      ['deflate', zlib.deflateSync(Buffer.alloc(LIMIT * 3, ' '))],
      ['zstd', zstd(ZSTD.fiveFrames)],
      ['zstd', zstd(ZSTD.declared)],
      ['zstd', zstd(ZSTD.piped1M)],
    ];
    for (const [encoding, body] of bombs) {
      expect(body.length).toBeLessThan(LIMIT / 10);
      const r = await send(body, encoding);
      expect([r.status, r.json?.error?.code], `${encoding}: ${r.text}`).toEqual([413, 'request_too_large']);
    }
  });

  it('an unknown coding is 415, a body that is not what its coding says 400: each in its protocol’s shape', async () => {
    const unknown = await send(BODY, 'compress');
    expect([unknown.status, unknown.json.error.code]).toEqual([415, 'unsupported_media_type']);
    expect(unknown.json.error.message).toContain('zstd');
    for (const encoding of ['gzip', 'br', 'zstd', 'deflate']) {
      const r = await send('{"model":"packed-model"}', encoding);
      expect([r.status, r.json.error.code], `${encoding}: ${r.text}`).toEqual([400, 'invalid_request']);
      expect(r.json.error.message).toContain(encoding);
    }
    const anthropic = await send('not gzip', 'gzip', '/messages');
    expect(anthropic.status).toBe(400);
    expect(anthropic.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    const tooMany = await send(BODY, 'identity, gzip, gzip, gzip, gzip');
    expect(tooMany.status).toBe(415);
  });
});
