// One stream through a StreamCheck, for bench/stream-check.ts. Its own module so that each
// checkout compared gets its own copy (imported under its own URL): closures made by one
// shared function would share their inline caches, and each side would run polymorphic.
import type { IngressRequest } from '../../src/relay/protocols/types.js';

interface Check {
  feed(chunk: Buffer): void;
  end(): void;
  // Text, or bytes since the checks pass frames on undecoded: only the length is counted.
  takeReady(): { length: number };
  takeTail(): { length: number };
  readonly done: boolean;
  readonly produced: string;
  readonly usage: { output: number } | null;
}
type CheckClass = new (decoder: unknown, encoder: null, model: string) => Check;
interface Codec {
  streamDecoder(r: IngressRequest): unknown;
  /** Checkouts before it have the decoder offer the check itself (`decoder.passThrough()`). */
  passThroughCheck?(r: IngressRequest): unknown;
}

/**
 * A function that checks `chunks` as one stream and returns the length of what it produced.
 * The generated text is read, as the relay reads it, only when no usage came (or always, with
 * `readProduced`: a stream cut short, or an upstream that never reports usage).
 */
export function streamRunner(StreamCheck: CheckClass, codec: Codec, r: IngressRequest) {
  return (chunks: Buffer[], readProduced = false): number => {
    const check = new StreamCheck(codec.passThroughCheck?.(r) ?? codec.streamDecoder(r), null, r.model);
    let out = 0;
    for (const c of chunks) {
      check.feed(c);
      out += check.takeReady().length;
    }
    check.end();
    out += check.takeTail().length + (check.usage?.output ?? 0);
    if (readProduced || !check.usage) out += check.produced.length;
    if (!check.done) throw new Error('stream did not finish');
    return out;
  };
}
