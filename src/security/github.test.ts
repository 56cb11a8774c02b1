// The signature check against GitHub's published test vector (github/docs PR #18776), and the
// key file's shape.
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseScanningKeys, verifyGithubSignature } from './github.js';

const KEY_ID = '90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a';
const PEM = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq
kCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==
-----END PUBLIC KEY-----`;
const PAYLOAD = '[{"token":"some_token","type":"some_type","url":"some_url"}]';
const SIGNATURE =
  'MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc=';

const keys = parseScanningKeys(
  JSON.stringify({ public_keys: [{ key_identifier: KEY_ID, key: PEM, is_current: true }] }),
);

describe("GitHub's secret-scanning signature", () => {
  it('accepts the published test vector', () => {
    expect(verifyGithubSignature(keys, KEY_ID, SIGNATURE, Buffer.from(PAYLOAD))).toBe(true);
  });

  it('refuses it with one byte of the body changed, added or the JSON re-serialised', () => {
    const changed = Buffer.from(PAYLOAD);
    changed[12] = changed[12]! ^ 1;
    expect(verifyGithubSignature(keys, KEY_ID, SIGNATURE, changed)).toBe(false);
    expect(verifyGithubSignature(keys, KEY_ID, SIGNATURE, Buffer.from(PAYLOAD + ' '))).toBe(false);
    const reserialised = JSON.stringify(JSON.parse(PAYLOAD), null, 1);
    expect(verifyGithubSignature(keys, KEY_ID, SIGNATURE, Buffer.from(reserialised))).toBe(false);
  });

  it('refuses a changed signature, an unknown key id and missing headers', () => {
    const sig = Buffer.from(SIGNATURE, 'base64');
    sig[sig.length - 1] = sig[sig.length - 1]! ^ 1;
    expect(verifyGithubSignature(keys, KEY_ID, sig.toString('base64'), Buffer.from(PAYLOAD))).toBe(false);
    expect(verifyGithubSignature(keys, 'ab' + KEY_ID.slice(2), SIGNATURE, Buffer.from(PAYLOAD))).toBe(false);
    expect(verifyGithubSignature(keys, undefined, SIGNATURE, Buffer.from(PAYLOAD))).toBe(false);
    expect(verifyGithubSignature(keys, KEY_ID, undefined, Buffer.from(PAYLOAD))).toBe(false);
    expect(verifyGithubSignature(keys, KEY_ID, 'not base64 at all!', Buffer.from(PAYLOAD))).toBe(false);
  });

  it('verifies a signature made with a key pair of our own (as GitHub would sign)', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const own = parseScanningKeys(
      JSON.stringify({
        public_keys: [
          { key_identifier: 'old', key: PEM, is_current: false },
          { key_identifier: 'new', key: pair.publicKey.export({ type: 'spki', format: 'pem' }) },
        ],
      }),
    );
    const body = Buffer.from('[]');
    const sig = sign('sha256', body, pair.privateKey).toString('base64');
    expect(verifyGithubSignature(own, 'new', sig, body)).toBe(true);
    expect(verifyGithubSignature(own, 'old', sig, body)).toBe(false);
  });

  it('refuses a key file of another shape', () => {
    expect(() => parseScanningKeys('{"keys":[]}')).toThrow(/public_keys/);
    expect(() => parseScanningKeys('{"public_keys":[{"key_identifier":"x","key":"nope"}]}')).toThrow();
  });
});
