// Reading an upstream's answer body: bounded, and never passing on the credential we sent.
import type { Readable } from 'node:stream';
import { UpstreamFailure } from './providers/transport.js';

export async function readAll(body: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += (c as Buffer).length;
    if (size > max) {
      body.destroy();
      throw new UpstreamFailure('upstream answer too large', false);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** An upstream error we pass on may quote the credential we sent it; never let that through. */
export function scrubCredential(body: Buffer, credential: string): Buffer {
  if (credential.length < 8 || body.indexOf(credential) < 0) return body;
  return Buffer.from(scrubText(body.toString('utf8'), credential));
}

/** The same for text we keep (an attempt's error on the log row, a warn line). */
export function scrubText(text: string, credential: string): string {
  return credential.length < 8 ? text : text.split(credential).join('[redacted]');
}

/** The error code an upstream's error body names (any protocol's shape), for the log row. */
export function upstreamErrorCode(body: Buffer): string {
  try {
    const e = (
      JSON.parse(body.toString('utf8')) as { error?: { code?: unknown; type?: unknown; status?: unknown } }
    ).error;
    for (const v of [e?.code, e?.type, e?.status])
      if (typeof v === 'string' && v.length > 0 && v.length < 64) return v;
    return 'upstream_error';
  } catch {
    return 'upstream_error';
  }
}
