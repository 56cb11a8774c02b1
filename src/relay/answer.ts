// Step 7/8 for a plain (non-stream) answer: read it whole, check it, count its usage, settle,
// log, and only then send it — as received on pass-through, re-encoded when translating.
import type { CanonicalAnswer } from './canonical.js';
import type { Attempt, AttemptResult } from './pipeline.js';
import type { UpstreamResponse } from './providers/transport.js';
import { namedBack } from './tool-names.js';
import { MAX_UPSTREAM_BODY, readAll, scrubText } from './upstream-body.js';

/** What an answer generated, for a local count when the upstream reported no usage. */
const produced = (a: CanonicalAnswer): string =>
  a.text + a.reasoning + a.toolCalls.map((t) => t.name + t.arguments).join('');

export async function relayPlain(a: Attempt, res: UpstreamResponse): Promise<AttemptResult> {
  const { call, egress } = a;
  const failed = (message: string): AttemptResult => ({
    answered: false,
    status: res.status,
    timeout: false,
    message,
  });
  const buf = await readAll(res.body, MAX_UPSTREAM_BODY);
  // Passed through as received: the usage is all there is to read, unless the bytes are odd.
  const passedUsage = a.pass ? (egress.passThroughUsage?.(buf) ?? null) : null;
  let answer: CanonicalAnswer | null = null;
  if (passedUsage === null) {
    let json: unknown;
    try {
      json = JSON.parse(buf.toString('utf8'));
    } catch {
      return failed('upstream sent an unreadable answer');
    }
    // An HTTP 200 whose body is an error is a failed attempt, not an answer to bill.
    const error = egress.answerError(json);
    if (error !== null)
      return failed(
        `upstream answered HTTP ${res.status} with an error: ${scrubText(error, a.channel.apiKey).slice(0, 200)}`,
      );
    try {
      answer = egress.decodeAnswer(json);
      if (a.toolNames) answer = namedBack(answer, a.toolNames);
    } catch {
      return failed('upstream sent an answer that could not be read');
    }
  }
  a.record(res.status);
  const usage = await call.finish({
    channel: a.channel,
    upstreamModel: a.upstreamModel,
    usage: passedUsage ?? answer!.usage,
    webSearches: answer?.webSearches ?? 0,
    serviceTier: answer?.serviceTier,
    responseId: a.pass ? answer?.id : null,
    produced: () => produced(answer ?? egress.decodeAnswer(JSON.parse(buf.toString('utf8')))),
  });
  const reply = call.reply.code(200).header('content-type', 'application/json');
  // Translated answers report the usage that was billed, in the client protocol's terms, and
  // name the model the client asked for (upstream names stay internal).
  void reply.send(
    a.pass
      ? buf
      : JSON.stringify(call.ingress.encodeAnswer({ ...answer!, model: call.r.model, usage }, call.r)),
  );
  return { answered: true };
}
