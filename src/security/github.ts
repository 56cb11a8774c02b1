// GitHub's secret-scanning partner program: its public keys and its signature. GitHub signs the
// raw request body with ECDSA P-256 / SHA-256 (DER, base64) and names the key in
// Github-Public-Key-Identifier; the keys are published at
// https://api.github.com/meta/public_keys/secret_scanning and read here from a file
// (MOLE_SECRET_SCANNING_KEYS), so an air-gapped gateway needs no call out.
import { createPublicKey, createVerify, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import { z } from 'zod';

const KeyFile = z.object({
  public_keys: z
    .array(
      z.object({
        key_identifier: z.string().min(1),
        key: z.string().min(1),
        is_current: z.boolean().optional(),
      }),
    )
    .min(1),
});

/** GitHub's signing keys by identifier (retired ones too: a report may be signed by any). */
export type ScanningKeys = ReadonlyMap<string, KeyObject>;

/** Parses GitHub's key file (`{"public_keys":[{key_identifier, key, is_current}]}`). Throws on a bad file. */
export function parseScanningKeys(json: string): ScanningKeys {
  const parsed = KeyFile.safeParse(JSON.parse(json));
  if (!parsed.success)
    throw new Error('not in the shape {"public_keys":[{key_identifier, key, is_current}]}');
  const out = new Map<string, KeyObject>();
  for (const k of parsed.data.public_keys) {
    const key = createPublicKey(k.key);
    if (key.asymmetricKeyType !== 'ec') throw new Error(`key ${k.key_identifier} is not an EC public key`);
    out.set(k.key_identifier.toLowerCase(), key);
  }
  return out;
}

/** Reads the key file at start; a missing or unreadable file stops the start with its reason. */
export function loadScanningKeys(file: string): ScanningKeys {
  try {
    return parseScanningKeys(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(
      `MOLE_SECRET_SCANNING_KEYS (${file}): ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** True when `signature` (base64 DER ECDSA) by the key named `keyId` signs exactly `body`. */
export function verifyGithubSignature(
  keys: ScanningKeys,
  keyId: string | undefined,
  signature: string | undefined,
  body: Buffer,
): boolean {
  if (!keyId || !signature) return false;
  const key = keys.get(keyId.trim().toLowerCase());
  if (!key) return false;
  const sig = Buffer.from(signature.trim(), 'base64');
  if (sig.length < 8 || sig.length > 80) return false;
  try {
    return createVerify('SHA256').update(body).verify(key, sig);
  } catch {
    return false;
  }
}
