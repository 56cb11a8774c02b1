import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UpstreamFailure } from './providers/transport.js';
import { readAll } from './upstream-body.js';

describe('readAll', () => {
  it('joins every chunk of the body', async () => {
    const parts = ['{"a":', '1,"b":"🐾"', '}'].map((t) => Buffer.from(t));
    expect((await readAll(Readable.from(parts), 1024)).toString()).toBe('{"a":1,"b":"🐾"}');
    expect((await readAll(Readable.from([]), 1024)).length).toBe(0);
  });

  it('refuses a body over the limit and stops reading it', async () => {
    const body = Readable.from([Buffer.alloc(600), Buffer.alloc(600), Buffer.alloc(600)]);
    const err = await readAll(body, 1000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamFailure);
    expect((err as Error).message).toBe('upstream answer too large');
    expect(body.destroyed).toBe(true);
  });

  it('fails with the stream error, or when the body closes before its end', async () => {
    const failing = new PassThrough();
    const read = readAll(failing, 1024);
    failing.write('{"partial"');
    failing.destroy(new Error('other side reset'));
    await expect(read).rejects.toThrow('other side reset');

    const cut = new PassThrough();
    const readCut = readAll(cut, 1024);
    cut.write('{"partial"');
    cut.destroy();
    await expect(readCut).rejects.toThrow('Premature close');
  });
});
