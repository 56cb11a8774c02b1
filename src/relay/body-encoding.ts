// Relay request bodies sent compressed (`Content-Encoding`). Codex and other coding agents send
// their growing Responses bodies as zstd, some clients gzip. A body is decoded before anything
// reads it, within the same byte limit as a plain one (MOLE_MAX_BODY_BYTES), so a small
// compressed body cannot become a large one: zlib stops at the limit, and a zstd frame is
// refused from its header alone when it declares more, or asks for a window (a buffer the
// decoder allocates up front, up to 2 GiB) past ZSTD_MAX_WINDOW and the limit.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Decompress } from 'fzstd';
import { AppError } from '../http/errors.js';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const inflateRaw = promisify(zlib.inflateRaw);
const brotli = promisify(zlib.brotliDecompress);

/**
 * The largest zstd window decoded, whatever the body limit: 8 MiB, what zstd's levels 1–19 use
 * at most (a streaming encoder, as Codex's, declares no size and asks for 2 MiB at level 3).
 * `--long` and `--ultra` frames ask for up to 2 GiB.
 */
const ZSTD_MAX_WINDOW = 8 * 1024 * 1024;

/** Codings undone, outermost last in the header (RFC 9110 §8.4): at most this many. */
const MAX_LAYERS = 3;
export const SUPPORTED_CODINGS = ['gzip', 'deflate', 'br', 'zstd'] as const;

/** The body as the client meant it: `header` is the request's Content-Encoding. */
export async function decodeBody(body: Buffer, header: string, limit: number): Promise<Buffer> {
  const codings = header
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length > MAX_LAYERS)
    throw new AppError('unsupported_media_type', `Content-Encoding lists more than ${MAX_LAYERS} codings.`);
  let out = body;
  for (const coding of codings.reverse()) out = await undo(coding, out, limit);
  return out;
}

async function undo(coding: string, body: Buffer, limit: number): Promise<Buffer> {
  const opts = { maxOutputLength: limit };
  try {
    switch (coding) {
      case 'gzip':
      case 'x-gzip':
        return await gunzip(body, opts);
      case 'deflate':
        // RFC 9110's deflate is zlib-wrapped; some clients send the raw stream.
        return await inflate(body, opts).catch((err: unknown) => {
          if (overLimit(err)) throw err;
          return inflateRaw(body, opts);
        });
      case 'br':
        return await brotli(body, opts);
      case 'zstd':
        return unzstd(body, limit);
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (overLimit(err)) throw tooLarge(limit);
    throw new AppError(
      'invalid_request',
      `The request body could not be decoded as its Content-Encoding (${coding}) says.`,
    );
  }
  throw new AppError(
    'unsupported_media_type',
    `Content-Encoding "${coding.slice(0, 40)}" is not supported; send the body as it is or as ${SUPPORTED_CODINGS.join(', ')}.`,
  );
}

/** zlib's answer to output past maxOutputLength. */
const overLimit = (err: unknown) =>
  err instanceof RangeError || (err as { code?: string } | null)?.code === 'ERR_BUFFER_TOO_LARGE';

const tooLarge = (limit: number) =>
  new AppError('request_too_large', `request body is larger than ${limit} bytes once decoded`);

function unzstd(body: Buffer, limit: number): Buffer {
  const frames = zstdFrames(body);
  if (frames === 'corrupt') throw new Error('not zstd');
  if (frames.declared > limit) throw tooLarge(limit);
  const window = Math.max(limit, ZSTD_MAX_WINDOW);
  if (frames.window > window)
    throw new AppError(
      'request_too_large',
      `a zstd frame of this body asks for a ${frames.window}-byte window; at most ${window} bytes are decoded here (compress without --long or --ultra)`,
    );
  const chunks: Uint8Array[] = [];
  let size = 0;
  const d = new Decompress((chunk) => {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  });
  d.push(new Uint8Array(body.buffer, body.byteOffset, body.byteLength), true);
  return Buffer.concat(chunks, size);
}

/**
 * Walks a zstd body's frames by their headers and block headers (RFC 8878 §3.1) without
 * decoding them: the largest window any frame asks for, and the largest content size any
 * declares. Skippable frames are stepped over.
 */
export function zstdFrames(b: Buffer): { window: number; declared: number } | 'corrupt' {
  let window = 0;
  let declared = 0;
  let p = 0;
  while (p < b.length) {
    if (p + 8 > b.length) return 'corrupt';
    const magic = b.readUInt32LE(p);
    if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
      p += 8 + b.readUInt32LE(p + 4);
      continue;
    }
    if (magic !== 0xfd2fb528) return 'corrupt';
    const flags = b[p + 4]!;
    const singleSegment = (flags >> 5) & 1;
    const contentSizeFlag = flags >> 6;
    let q = p + 5;
    let frameWindow = 0;
    if (!singleSegment) {
      const wd = b[q++]!;
      const base = 2 ** (10 + (wd >> 3));
      frameWindow = base + (base / 8) * (wd & 7);
    }
    q += [0, 1, 2, 4][flags & 3]!;
    const sizeBytes = contentSizeFlag ? 1 << contentSizeFlag : singleSegment;
    if (q + sizeBytes > b.length) return 'corrupt';
    let contentSize = 0;
    for (let i = sizeBytes - 1; i >= 0; i--) contentSize = contentSize * 256 + b[q + i]!;
    if (contentSizeFlag === 1) contentSize += 256;
    q += sizeBytes;
    if (singleSegment) frameWindow = contentSize;
    window = Math.max(window, frameWindow);
    declared = Math.max(declared, contentSize);
    for (;;) {
      if (q + 3 > b.length) return 'corrupt';
      const header = b[q]! | (b[q + 1]! << 8) | (b[q + 2]! << 16);
      const type = (header >> 1) & 3;
      if (type === 3) return 'corrupt';
      q += 3 + (type === 1 ? 1 : header >>> 3);
      if (header & 1) break;
    }
    if ((flags >> 2) & 1) q += 4;
    if (q > b.length) return 'corrupt';
    p = q;
  }
  return { window, declared };
}
