// Step 7/8 for a stream: frames are checked one by one (StreamCheck: decode, count, and
// either keep the raw frame or re-encode it in the client's protocol; a pass-through whose
// codec offers a PassThroughCheck checks the bytes and decodes text only when it is counted)
// and written one upstream chunk at a time, a pass-through's frames as the upstream's bytes
// (ClientStream: headers on first write, backpressure). The protocol's last frames are held
// until the answer is settled and logged, so an answer the client received in full is always
// on the books.
import type { OutgoingHttpHeader, ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  generatedText,
  type PassThroughCheck,
  type StreamDecoder,
  type StreamEncoder,
  StreamBroken,
  type SseFrame,
} from './canonical.js';
import type { Attempt, AttemptResult } from './pipeline.js';
import { SHUTTING_DOWN } from './providers/failure.js';
import { type UpstreamResponse, UpstreamFailure } from './providers/transport.js';
import { SseByteFrames, SseFrameParser } from './sse.js';
import { eventNamedBack } from './tool-names.js';
import { scrubText, sentence } from './upstream-body.js';

/** How many pieces of generated text a stream keeps before it joins them into one string. */
const PIECES_JOINED = 256;

/**
 * What goes to the client: text, or a run of upstream bytes passed on as they came (decoding
 * them to text only for the socket to encode them back cost ~2 µs a 4 KiB answer).
 */
export type ClientBytes = string | Buffer;

/** Pieces as one write: none is '', a lone piece goes as it is, text stays text. */
export function joinBytes(pieces: readonly ClientBytes[]): ClientBytes {
  if (pieces.length <= 1) return pieces[0] ?? '';
  if (pieces.every((p) => typeof p === 'string')) return pieces.join('');
  return Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
}

/** Checks an upstream stream frame by frame and prepares what the client should see. */
export class StreamCheck {
  /** Checked, to go out now; and the protocol's last frames, held until the answer is settled. */
  private ready: ClientBytes[] = [];
  private tail: ClientBytes[] = [];
  /**
   * Generated text so far, in pieces joined into one every PIECES_JOINED: `+=` per event made a
   * rope of a node per token (~35 bytes each) that a long stream held to its end.
   */
  private generated: string[] = [];
  /**
   * Pass-through, when the codec offers a check that needs no events: the frames are then
   * split as bytes (`frames`) and only decoded to go out.
   */
  private readonly passThrough: PassThroughCheck | null;
  /** Otherwise the decoder, whose events are re-encoded (`encoder`) or only checked (null). */
  private readonly decoder: StreamDecoder | null;
  private readonly frames: SseByteFrames | null;
  private readonly sse: SseFrameParser | null;
  /** Pass-through frames checked, to go out: bytes[runStart, runEnd) of `frames`, to the tail or not. */
  private runStart = 0;
  private runEnd = 0;
  private runToTail = false;

  constructor(
    reader: StreamDecoder | PassThroughCheck,
    /** Null on pass-through: frames go out as received. */
    private readonly encoder: StreamEncoder | null,
    private readonly clientModel: string,
    /** Tool names renamed to fit the upstream (tool-names.ts): its calls are named back. */
    private readonly toolNames: ReadonlyMap<string, string> | null = null,
  ) {
    this.passThrough = 'checkBytes' in reader ? reader : null;
    this.decoder = 'checkBytes' in reader ? null : reader;
    this.frames = this.passThrough ? new SseByteFrames() : null;
    this.sse = this.passThrough ? null : new SseFrameParser();
  }

  get done(): boolean {
    return (this.passThrough ?? this.decoder)!.done;
  }

  get usage() {
    return (this.passThrough ?? this.decoder)!.usage;
  }

  get webSearches(): number {
    return (this.passThrough ?? this.decoder)!.webSearches ?? 0;
  }

  get serviceTier(): string | undefined {
    return (this.passThrough ?? this.decoder)!.serviceTier;
  }

  /** A pass-through answer's id, where its check reads one (a Responses stream's). */
  get answerId(): string | null {
    return this.passThrough?.answerId ?? null;
  }

  /** Generated text so far, for a local count should the upstream's usage never come. */
  get produced(): string {
    return this.passThrough ? this.passThrough.produced : this.generated.join('');
  }

  /** Checks the frames completed by one chunk; throws StreamBroken on a bad or error frame. */
  feed(chunk: Buffer): void {
    if (this.frames) {
      this.frames.push(chunk);
      try {
        while (this.frames.next()) this.takeBytes(this.frames);
      } finally {
        this.flushRun(); // what was checked before a bad frame still goes out
      }
    } else for (const frame of this.sse!.feed(chunk)) this.take(frame);
  }

  /** The upstream ended: checks a last frame that lacked its blank line. */
  end(): void {
    if (this.frames) {
      const frame = this.frames.last();
      if (frame) this.take(frame);
    } else for (const frame of this.sse!.end()) this.take(frame);
  }

  /** What was checked so far and may go out now ('' or empty: nothing). */
  takeReady(): ClientBytes {
    const t = joinBytes(this.ready);
    this.ready.length = 0;
    return t;
  }

  /** The protocol's last frames (from the one that ended the answer on): held until settled. */
  takeTail(): ClientBytes {
    const t = joinBytes(this.tail);
    this.tail.length = 0;
    return t;
  }

  /**
   * A pass-through frame as bytes: the usual one- or two-line frame is checked undecoded, and
   * joins the run of frames that go out together (decoded once, when the run ends).
   */
  private takeBytes(f: SseByteFrames): void {
    const check = this.passThrough!;
    if (f.dataStart < 0 || (f.eventStart >= 0 && !check.checkEventBytes)) {
      this.flushRun();
      const frame = f.text();
      if (frame) this.take(frame);
      return;
    }
    const afterDone = this.done;
    const hide =
      f.eventStart < 0
        ? check.checkBytes(f.bytes, f.dataStart, f.dataEnd)
        : check.checkEventBytes!(f.bytes, f.eventStart, f.eventEnd, f.dataStart, f.dataEnd);
    if (hide) {
      this.flushRun();
      return;
    }
    const toTail = afterDone || this.done;
    if (this.runEnd > this.runStart && (toTail !== this.runToTail || f.start !== this.runEnd))
      this.flushRun();
    if (this.runEnd === this.runStart) {
      this.runStart = f.start;
      this.runToTail = toTail;
    }
    this.runEnd = f.end;
  }

  private flushRun(): void {
    if (this.runEnd === this.runStart) return;
    (this.runToTail ? this.tail : this.ready).push(this.frames!.bytes.subarray(this.runStart, this.runEnd));
    this.runStart = this.runEnd = 0;
  }

  private take(frame: SseFrame): void {
    const afterDone = this.done;
    let text = '';
    if (this.passThrough) {
      if (!this.passThrough.check(frame)) text = frame.raw;
    } else {
      const { events, hide } = this.decoder!.feed(frame);
      for (const e of events) {
        const piece = generatedText(e);
        if (piece && this.generated.push(piece) >= PIECES_JOINED) this.generated = [this.generated.join('')];
        // Translated answers name the model the client asked for (upstream names stay internal).
        if (this.encoder)
          text += this.encoder.event(
            e.type === 'start'
              ? { ...e, model: this.clientModel }
              : this.toolNames
                ? eventNamedBack(e, this.toolNames)
                : e,
          );
      }
      if (!this.encoder && !hide) text = frame.raw;
    }
    if (text) (afterDone || this.done ? this.tail : this.ready).push(text);
  }
}

/** An SSE answer's own headers, as name, value, …; they and x-request-id replace the reply's. */
const STREAM_HEADERS = [
  'content-type',
  'text/event-stream; charset=utf-8',
  'cache-control',
  'no-cache',
  'connection',
  'keep-alive',
];
const STREAM_HEADER_NAMES = new Set(['content-type', 'cache-control', 'connection', 'x-request-id']);

/**
 * Gemini's `:streamGenerateContent` asked without `?alt=sse` answers one JSON array that grows
 * element by element (`[{…}` then `,\r\n{…}` … `]`), as Google's REST API does; the frames the
 * relay writes as SSE (`data: {…}`) are rewritten so. Only curl and plain REST clients ask so:
 * the SDKs and Gemini CLI send alt=sse.
 */
class JsonArrayFrames {
  private opened = false;

  /** The elements in `bytes` (whole SSE frames), each after its separator. */
  elements(bytes: ClientBytes): string {
    let out = '';
    for (const frame of String(bytes).split(/\r?\n\r?\n/)) {
      const data = frame
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(l[5] === ' ' ? 6 : 5))
        .join('\n');
      if (data === '' || data === '[DONE]') continue;
      out += (this.opened ? ',\r\n' : '[') + data;
      this.opened = true;
    }
    return out;
  }

  /** The array's close (an empty one when nothing came). */
  close(): string {
    return this.opened ? ']' : '[]';
  }
}

/** The client's side of a stream: SSE headers on the first write, writes with backpressure. */
export class ClientStream {
  started = false;
  ttftMs: number | null = null;
  private readonly out: ServerResponse;

  /** Gemini's stream as a JSON array (no `alt=sse`): see JsonArrayFrames. */
  private readonly array: JsonArrayFrames | null;

  constructor(
    private readonly req: FastifyRequest,
    private readonly reply: FastifyReply,
  ) {
    this.out = reply.raw;
    this.array =
      req.relay?.protocol === 'gemini' && (req.query as { alt?: unknown } | undefined)?.alt !== 'sse'
        ? new JsonArrayFrames()
        : null;
  }

  get gone(): boolean {
    return this.out.destroyed;
  }

  private begin(): void {
    if (this.started) return;
    this.started = true;
    this.ttftMs = Math.round(performance.now() - this.req.relay!.startedAt);
    const own = this.reply.getHeaders();
    this.reply.hijack();
    // A flat [name, value, …] list: spreading the reply's headers into a new object made one
    // that most streams promoted to the old generation (~0.5 KB each), and cost ~6 % of a
    // stream's CPU (A/B, 50 connections).
    const head: OutgoingHttpHeader[] = [];
    for (const name in own) {
      const value = own[name];
      if (value !== undefined && !STREAM_HEADER_NAMES.has(name)) head.push(name, value);
    }
    if (this.array) head.push('content-type', 'application/json; charset=UTF-8');
    else head.push(...STREAM_HEADERS);
    head.push('x-request-id', this.req.id);
    this.out.writeHead(200, head);
  }

  /** Writes `bytes`; a promise only when the client's socket is full (settles on drain or close). */
  write(bytes: ClientBytes): Promise<void> | undefined {
    this.begin();
    const out = this.array ? this.array.elements(bytes) : bytes;
    if (out.length === 0) return undefined;
    return this.out.write(out) ? undefined : drainedOrClosed(this.out);
  }

  /** Ends the answer with `pieces`, in one write. */
  end(...pieces: ClientBytes[]): void {
    this.begin();
    if (this.out.destroyed) return;
    const all = joinBytes(pieces.filter((p) => p.length > 0));
    this.out.end(this.array ? this.array.elements(all) + this.array.close() : all);
  }
}

export async function relayStream(a: Attempt, res: UpstreamResponse): Promise<AttemptResult> {
  const { call, egress, pass } = a;
  const { req, reply, r, ingress } = call;
  const encoder = pass ? null : ingress.streamEncoder(r, req.id);
  const reader = (pass && egress.passThroughCheck?.(r)) || egress.streamDecoder(r);
  const check = new StreamCheck(reader, encoder, r.model, a.toolNames);
  const out = new ClientStream(req, reply);
  let finished = false;

  // The answer is complete: settle and log it, then send its last frames.
  const complete = async (ready: ClientBytes, tail: ClientBytes) => {
    finished = true;
    a.record(res.status);
    const usage = await call.finish({
      channel: a.channel,
      upstreamModel: a.upstreamModel,
      usage: check.usage,
      webSearches: check.webSearches,
      serviceTier: check.serviceTier,
      responseId: check.answerId,
      produced: () => check.produced,
      ttftMs: out.ttftMs ?? Math.round(performance.now() - req.relay!.startedAt),
    });
    out.end(ready, tail, encoder ? encoder.finish(usage) : '');
  };

  const clientStays = () => {
    if (out.gone) throw new StreamBroken('client went away');
  };

  let failure: string | null = null;
  let timeout = false;
  /** The upstream's own error event, when one ended the stream. */
  let upstreamError: StreamBroken['upstream'];
  try {
    try {
      // Chunk by chunk, without a promise per chunk: only a full client socket or the settling
      // returns one, and the upstream is paused until it settles.
      await res.body.consume((chunk) => {
        if (finished) return; // nothing follows the last frame; drain so the connection is reused
        check.feed(chunk);
        const ready = check.takeReady();
        if (check.done) return complete(ready, check.takeTail());
        if (ready.length === 0) return;
        const full = out.write(ready);
        if (full) return full.then(clientStays);
        clientStays();
      });
      if (!finished) {
        check.end();
        if (!check.done) throw new StreamBroken('upstream stream ended early');
        await complete(check.takeReady(), check.takeTail());
      }
    } finally {
      // What was checked before a failure still reaches a client that is already reading.
      const rest = check.takeReady();
      if (!finished && rest.length > 0 && out.started && !out.gone) await out.write(rest);
    }
  } catch (err) {
    res.body.destroy();
    // The client already has the whole answer: what the upstream does after it is no failure.
    if (finished) return { answered: true };
    failure =
      err instanceof StreamBroken || err instanceof UpstreamFailure
        ? err.message
        : err instanceof Error && /timeout/i.test(err.name + err.message)
          ? 'upstream timed out'
          : 'upstream stream failed';
    timeout = failure === 'upstream timed out' || (err instanceof UpstreamFailure && err.timeout);
    // An upstream's error may quote the credential we sent it: never to the client or the log.
    failure = scrubText(failure, a.channel.apiKey);
    if (err instanceof StreamBroken && err.upstream)
      upstreamError = { code: err.upstream.code, message: scrubText(err.upstream.message, a.channel.apiKey) };
    // Nothing reached the client yet: the caller may try the next channel.
    if (!out.started && !out.gone) return { answered: false, status: res.status, timeout, message: failure };
  }
  if (finished) return { answered: true };

  // Cut after the answer began: bill what was generated, estimated, and close with an error.
  const clientLeft = out.gone;
  a.record(res.status, clientLeft ? null : failure);
  await call.finish({
    channel: a.channel,
    upstreamModel: a.upstreamModel,
    usage: check.usage,
    // An upstream error event with usage is its final count; else what came is counted here.
    partial: !(upstreamError && check.usage),
    webSearches: check.webSearches,
    serviceTier: check.serviceTier,
    produced: () => check.produced,
    status: clientLeft ? 499 : 200,
    errorCode: clientLeft ? 'client_closed' : 'upstream_error',
    ttftMs: out.ttftMs,
  });
  if (!out.gone) {
    const message = sentence(
      failure === SHUTTING_DOWN ? `The answer was cut: ${failure}` : `The upstream stream failed: ${failure}`,
    );
    // On pass-through the upstream's own code and message go on as they came (Codex acts on
    // context_length_exceeded, and reads a rate limit's wait from the message).
    const own = upstreamError?.code ? upstreamError : undefined;
    const passed = encoder
      ? undefined
      : (reader as Partial<PassThroughCheck>).error?.(
          own ? own.code! : 'upstream_error',
          own ? own.message : message,
          own !== undefined,
        );
    const status = timeout ? 504 : failure === SHUTTING_DOWN ? 503 : 502;
    out.end(passed ?? (encoder ?? ingress.streamEncoder(r, req.id)).error('upstream_error', message, status));
  }
  return clientLeft || failure === null ? { answered: true } : { answered: true, broken: failure };
}

/**
 * Waits until `out` can take more data or has closed. Listeners are removed either way (a
 * long stream waits many times), and a response that is already closed never emits 'close'
 * again, so it is not waited on at all.
 */
function drainedOrClosed(out: ServerResponse): Promise<void> {
  if (out.destroyed || out.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}
