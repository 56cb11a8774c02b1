// A request refused for its body's size (413) while the client is still sending that body.
// Fastify marks such answers `connection: close`, so the socket closed after the answer while
// the rest of the upload was in flight: the client's next writes met a reset, and HTTP clients
// that send the whole body before reading (Node's fetch under the openai, Anthropic and Google
// SDKs) reported a connection error, never the 413, and retried the upload. As nginx does
// (lingering close), the rest of the body is read and thrown away instead, so the client gets
// to read the answer and the connection stays usable; past a bound in bytes or time the socket
// is closed, so a refused upload cannot hold a connection for ever.
import type { FastifyReply, FastifyRequest } from 'fastify';

/** What is read and discarded of a refused body before the connection is cut. */
export const REFUSED_BODY_DRAIN_BYTES = 64 * 1024 * 1024;
/** How long the rest of a refused body may take to arrive. */
export const REFUSED_BODY_DRAIN_MS = 30_000;

/**
 * Call before sending a refusal of a request whose body is not (all) read, a 413 or a key
 * refused before its body: the answer goes out at once, the body's rest is drained.
 */
export function drainRefusedBody(req: FastifyRequest, reply: FastifyReply): void {
  const raw = req.raw;
  if (raw.complete || raw.destroyed) return;
  reply.removeHeader('connection');
  const cut = () => raw.socket?.destroy();
  const timer = setTimeout(cut, REFUSED_BODY_DRAIN_MS);
  timer.unref();
  let left = REFUSED_BODY_DRAIN_BYTES;
  raw.on('data', (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) {
      clearTimeout(timer);
      cut();
    }
  });
  raw.once('end', () => clearTimeout(timer));
  raw.once('close', () => clearTimeout(timer));
  raw.resume();
}
