// Reading an upstream's answer body: bounded, and never passing on the credential we sent.
import type { Readable } from 'node:stream';
import { UpstreamFailure } from './providers/transport.js';

/**
 * The whole body, at most `max` bytes. Read from 'data' events into one promise: an answer is
 * usually one chunk, and an async iterator costs a promise and a microtask round per chunk.
 */
export function readAll(body: Readable, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let ended = false;
    body.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new UpstreamFailure('upstream answer too large', false));
        body.destroy();
        return;
      }
      chunks.push(c);
    });
    body.once('end', () => {
      ended = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    body.once('error', reject);
    // Closed without its end (destroyed, aborted): what `for await` reports as a premature close.
    body.once('close', () => {
      if (!ended) reject(new Error('Premature close'));
    });
  });
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
