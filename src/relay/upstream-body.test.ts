import { describe, expect, it } from 'vitest';
import { UpstreamFailure } from './providers/transport.js';
import { type BodySource, UpstreamBody, readAll, scrubCredential, scrubText } from './upstream-body.js';

/** A source that records what the body asked of it. */
function fakeSource() {
  const calls: string[] = [];
  const source: BodySource = {
    pause: () => calls.push('pause'),
    resume: () => calls.push('resume'),
    abort: (err) => calls.push(`abort: ${err.message}`),
  };
  return { calls, source };
}

const b = (t: string) => Buffer.from(t);

describe('readAll', () => {
  it('joins every chunk of the body, queued before the read or pushed after it', async () => {
    const body = new UpstreamBody();
    body.push(b('{"a":'));
    const read = readAll(body, 1024);
    body.push(b('1,"b":"🐾"'));
    body.push(b('}'));
    body.end();
    expect((await read).toString()).toBe('{"a":1,"b":"🐾"}');
    expect((await readAll(UpstreamBody.of(), 1024)).length).toBe(0);
  });

  it('refuses a body over the limit and stops the upstream', async () => {
    const { calls, source } = fakeSource();
    const body = new UpstreamBody(source);
    const read = readAll(body, 1000);
    body.push(Buffer.alloc(600));
    body.push(Buffer.alloc(600));
    body.push(Buffer.alloc(600));
    const err = await read.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamFailure);
    expect((err as Error).message).toBe('upstream answer too large');
    expect(calls).toEqual(['abort: upstream answer too large']);
  });

  it('fails with the upstream error, or when the body is destroyed before its end', async () => {
    const failing = new UpstreamBody();
    const read = readAll(failing, 1024);
    failing.push(b('{"partial"'));
    failing.fail(new Error('other side reset'));
    await expect(read).rejects.toThrow('other side reset');

    const { calls, source } = fakeSource();
    const cut = new UpstreamBody(source);
    cut.push(b('{"partial"'));
    cut.destroy();
    await expect(readAll(cut, 1024)).rejects.toThrow('Premature close');
    expect(calls).toEqual(['abort: Premature close']);
  });
});

describe('UpstreamBody.consume', () => {
  it('pauses the upstream while a chunk is being handled, then hands on what came meanwhile', async () => {
    const { calls, source } = fakeSource();
    const body = new UpstreamBody(source);
    const seen: string[] = [];
    let release!: () => void;
    const done = body.consume((c) => {
      seen.push(c.toString());
      if (seen.length === 1) return new Promise<void>((r) => (release = r));
    });
    body.push(b('one'));
    expect(calls).toEqual(['pause']);
    // undici may hand over the chunk it was parsing when asked to pause: it waits its turn.
    body.push(b('two'));
    body.end();
    expect(seen).toEqual(['one']);
    release();
    await done;
    expect(seen).toEqual(['one', 'two']);
  });

  it('resumes the upstream once the reader caught up, if the body goes on', async () => {
    const { calls, source } = fakeSource();
    const body = new UpstreamBody(source);
    let release!: () => void;
    const done = body.consume((c) => {
      if (c.toString() === 'slow') return new Promise<void>((r) => (release = r));
    });
    body.push(b('slow'));
    release();
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(['pause', 'resume']);
    body.push(b('fast'));
    body.end();
    await done;
    expect(calls).toEqual(['pause', 'resume']);
  });

  it('pauses an upstream nobody reads yet once enough is queued', () => {
    const { calls, source } = fakeSource();
    const body = new UpstreamBody(source);
    body.push(Buffer.alloc(32 * 1024));
    expect(calls).toEqual([]);
    body.push(Buffer.alloc(32 * 1024));
    expect(calls).toEqual(['pause']);
  });

  it('tells a busy reader of an upstream failure only once it is done with its chunk', async () => {
    const body = new UpstreamBody();
    let release!: () => void;
    let handling = false;
    const done = body.consume(() => {
      handling = true;
      return new Promise<void>((r) => (release = r)).then(() => {
        handling = false;
      });
    });
    body.push(b('frame'));
    body.fail(new Error('Body Timeout Error'));
    const outcome = done.then(
      () => 'ended',
      (e: Error) => (handling ? 'while handling' : e.message),
    );
    await new Promise((r) => setImmediate(r));
    release();
    expect(await outcome).toBe('Body Timeout Error');
  });

  it('stops the upstream when the reader throws, synchronously or by a rejected promise', async () => {
    const a = fakeSource();
    const sync = new UpstreamBody(a.source);
    const first = sync.consume(() => {
      throw new Error('bad frame');
    });
    sync.push(b('x'));
    await expect(first).rejects.toThrow('bad frame');
    expect(a.calls).toEqual(['abort: bad frame']);

    const c = fakeSource();
    const later = new UpstreamBody(c.source);
    const second = later.consume(() => Promise.reject(new Error('client went away')));
    later.push(b('x'));
    await expect(second).rejects.toThrow('client went away');
    expect(c.calls).toEqual(['pause', 'abort: client went away']);
  });

  it('is read once', async () => {
    const body = UpstreamBody.of(b('x'));
    expect((await readAll(body, 10)).toString()).toBe('x');
    await expect(readAll(body, 10)).rejects.toThrow('read once');
  });
});

describe('scrubText / scrubCredential', () => {
  it('redact a credential as sent, escaped inside JSON, and percent-encoded', () => {
    const cred = 'EVIL"ESC\\KEY<>&-12345678';
    const body = JSON.stringify({
      error: { message: `key ${cred} rejected`, url: `?key=${encodeURIComponent(cred)}` },
    });
    const scrubbed = scrubCredential(Buffer.from(body), cred).toString();
    expect(scrubbed).not.toContain(JSON.stringify(cred).slice(1, -1));
    expect(scrubbed).not.toContain(encodeURIComponent(cred));
    expect(JSON.parse(scrubbed)).toEqual({
      error: { message: 'key [redacted] rejected', url: '?key=[redacted]' },
    });
    expect(scrubText(`plain ${cred}`, cred)).toBe('plain [redacted]');
  });

  it('leave a body that quotes no credential as it is (the same buffer)', () => {
    const body = Buffer.from('{"error":{"message":"bad request"}}');
    expect(scrubCredential(body, 'sk-upstream-0123456789')).toBe(body);
  });
});
