// A GitHub stand-in for the leak-report suites: a P-256 key pair of our own, its public half
// written in GitHub's key-file shape (MOLE_SECRET_SCANNING_KEYS), and reports signed with it
// exactly as GitHub signs them (base64 DER ECDSA over the raw body).
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type TestJson, type StartOptions, startTestServer, type TestServer } from '../helpers/server.js';
import { forSuite, standIn } from '../helpers/suite.js';

export interface FakeGithub {
  /** The key file to pass as MOLE_SECRET_SCANNING_KEYS. */
  file: string;
  keyId: string;
  sign(body: string | Buffer): string;
  /** POSTs a report: signed by us unless `headers` says otherwise. */
  report(
    s: TestServer,
    body: unknown,
    headers?: Record<string, string | undefined>,
  ): Promise<{ status: number; body: TestJson; ms: number }>;
  cleanup(): void;
}

export function fakeGithub(): FakeGithub {
  const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const retired = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyId = randomBytes(32).toString('hex');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-gh-'));
  const file = path.join(dir, 'secret_scanning.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      public_keys: [
        {
          key_identifier: randomBytes(32).toString('hex'),
          key: retired.publicKey.export({ type: 'spki', format: 'pem' }),
          is_current: false,
        },
        {
          key_identifier: keyId,
          key: pair.publicKey.export({ type: 'spki', format: 'pem' }),
          is_current: true,
        },
      ],
    }),
  );
  const signBody = (body: string | Buffer) =>
    sign('sha256', Buffer.isBuffer(body) ? body : Buffer.from(body), pair.privateKey).toString('base64');
  return {
    file,
    keyId,
    sign: signBody,
    async report(s, body, headers = {}) {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      const all: Record<string, string | undefined> = {
        'content-type': 'application/json',
        'github-public-key-identifier': keyId,
        'github-public-key-signature': signBody(text),
        ...headers,
      };
      const sent: Record<string, string> = {};
      for (const [k, v] of Object.entries(all)) if (v !== undefined) sent[k] = v;
      const t0 = performance.now();
      const res = await fetch(s.url + '/api/secret-scanning/github', {
        method: 'POST',
        headers: sent,
        body: text,
      });
      const answer = await res.text();
      let parsed: unknown = answer;
      try {
        parsed = JSON.parse(answer);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed, ms: performance.now() - t0 };
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One GitHub match for a token. */
export const match = (token: string, url = 'https://github.com/acme/app/blob/abc123/.env') => ({
  token,
  type: 'moleapi_api_key',
  url,
  source: 'content',
});

/** The token_hash GitHub labels a reported token by: its SHA-256, hex. */
export const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');

/** A describe block's test server trusting a fake GitHub's key file; both gone after the block. */
export function githubForSuite(opts: StartOptions): { s: TestServer; gh: FakeGithub } {
  const s = standIn<TestServer>('test server');
  const gh = standIn<FakeGithub>('fake GitHub');
  forSuite(
    async () => {
      const gh = fakeGithub();
      const s = await startTestServer({
        ...opts,
        env: { ...opts.env, MOLE_SECRET_SCANNING_KEYS: gh.file },
      }).catch((e: unknown) => {
        gh.cleanup();
        throw e;
      });
      return {
        s,
        gh,
        async close() {
          await s.close();
          gh.cleanup();
        },
      };
    },
    (started) => {
      s.bind(started.s);
      gh.bind(started.gh);
    },
  );
  return { s: s.ref, gh: gh.ref };
}
