// Upstream credentials at rest: AES-256-GCM under a key derived from MOLE_SECRET.
// Stored as "v1:<iv>:<tag>:<ciphertext>" (base64).
import fs from 'node:fs';
import path from 'node:path';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

export class SecretBox {
  private readonly key: Buffer;
  constructor(secret: string) {
    if (secret.length < 16) throw new Error('MOLE_SECRET must be at least 16 characters');
    this.key = createHash('sha256')
      .update('moleapi:channel-credentials:v1\0' + secret)
      .digest();
  }
  seal(plain: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return `v1:${iv.toString('base64')}:${c.getAuthTag().toString('base64')}:${ct.toString('base64')}`;
  }
  open(sealed: string): string {
    const [v, iv, tag, ct] = sealed.split(':');
    if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('unreadable credential');
    const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
    d.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([d.update(Buffer.from(ct, 'base64')), d.final()]).toString('utf8');
  }
}

/**
 * MOLE_SECRET, or in SQLite mode a secret generated once into the data dir. The server and
 * `mole import new-api` (which seals imported credentials) both take it from here.
 */
export function resolveSecret(config: {
  secret: string | undefined;
  databaseUrl: string | undefined;
  dataDir: string;
}): string {
  if (config.secret) return config.secret;
  if (config.databaseUrl)
    throw new Error('MOLE_SECRET is required with DATABASE_URL (it encrypts upstream credentials)');
  const file = path.join(config.dataDir, 'secret');
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  if (!fs.existsSync(file))
    fs.writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
  return fs.readFileSync(file, 'utf8').trim();
}
