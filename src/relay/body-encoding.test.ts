import { describe, expect, it } from 'vitest';
import { decodeBody, zstdFrames } from './body-encoding.js';

// Made with the zstd command (v1.5.4, -3); see test/relay/compressed-bodies.test.ts.
const HELLO = Buffer.from('KLUv/SQFKQAAaGVsbG+jbZ+I', 'base64'); // "hello", size declared
const PIPED = Buffer.from('KLUv/QRYKQAAaGVsbG+jbZ+I', 'base64'); // "hello" from a pipe: no size, a 2 MiB window

/** A frame that declares `size` bytes of content (single segment) and holds one raw byte. */
function declaring(size: number): Buffer {
  const b = Buffer.alloc(13);
  b.writeUInt32LE(0xfd2fb528, 0);
  b[4] = 0xa0; // 4-byte content size, single segment, no checksum
  b.writeUInt32LE(size, 5);
  b.writeUIntLE(1 | (1 << 3), 9, 3); // the last block: raw, 1 byte
  b[12] = 0x61;
  return b;
}

describe('zstd frame headers', () => {
  it('reads each frame’s window and declared size without decoding', () => {
    expect(zstdFrames(HELLO)).toEqual({ window: 5, declared: 5 });
    expect(zstdFrames(PIPED)).toEqual({ window: 2 * 1024 * 1024, declared: 0 });
    expect(zstdFrames(Buffer.concat([HELLO, PIPED, HELLO]))).toEqual({
      window: 2 * 1024 * 1024,
      declared: 5,
    });
    expect(zstdFrames(declaring(2_130_706_432))).toEqual({ window: 2_130_706_432, declared: 2_130_706_432 });
    // A skippable frame (magic 0x184D2A5?, a length, that many bytes) is stepped over.
    const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
    expect(zstdFrames(Buffer.concat([skippable, HELLO]))).toEqual({ window: 5, declared: 5 });
  });

  it('calls cut or foreign bytes corrupt', () => {
    expect(zstdFrames(HELLO.subarray(0, HELLO.length - 1))).toBe('corrupt');
    expect(zstdFrames(Buffer.from('{"model":"x"}'))).toBe('corrupt');
    expect(zstdFrames(Buffer.concat([HELLO, Buffer.from([1, 2])]))).toBe('corrupt');
  });

  it('refuses a frame that asks for more than the limit before the decoder allocates it', async () => {
    // The decoder would allocate the 2 GB window up front; refused from the header instead.
    const before = process.memoryUsage().arrayBuffers;
    await expect(decodeBody(declaring(2_130_706_432), 'zstd', 1_000_000)).rejects.toMatchObject({
      code: 'request_too_large',
    });
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(100_000_000);
    // A window is a buffer, not what the body decodes to: a piped frame's 2 MiB is decoded
    // under any limit, one past 8 MiB (and past the limit) is not.
    expect((await decodeBody(PIPED, 'zstd', 1_000)).toString()).toBe('hello');
    const bigWindow = Buffer.from(PIPED);
    bigWindow[5] = (24 - 10) << 3; // window descriptor: 2^24 bytes
    expect(zstdFrames(bigWindow)).toEqual({ window: 16 * 1024 * 1024, declared: 0 });
    await expect(decodeBody(bigWindow, 'zstd', 1_000_000)).rejects.toMatchObject({
      code: 'request_too_large',
      message: expect.stringContaining('16777216-byte window'),
    });
    expect((await decodeBody(HELLO, ' zstd ', 5)).toString()).toBe('hello');
  });
});
