// Local token counting (gpt-tokenizer, o200k_base): an upper bound for admission, and the
// estimate when an upstream reports no usage or a stream is cut.
import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { lazyModule } from '../shared/lazy-module.js';

/**
 * gpt-tokenizer, loaded by the first count rather than at start: reading and building its
 * o200k table costs ~0.3 s of CPU (a fifth of a gateway's start), which a process that never
 * counts need not pay. Counting is synchronous, so this is its CommonJS build, required. The
 * gateway (main.ts) calls this once it listens, so its first counted request does not wait.
 */
export const loadTokenizer = lazyModule<typeof import('gpt-tokenizer')>('gpt-tokenizer').load;

/** Per-message and reply-priming overhead, as OpenAI's chat format adds. */
const PER_MESSAGE = 4;
const REPLY_PRIMING = 3;

/** Name tokens carry one token of overhead on top of the name itself. */
const PER_NAME = 1;
/**
 * An image part, for admission only: OpenAI bills a low-detail image 85 tokens and a
 * high-detail one 85 + 170 per 512 px tile, at most 8 tiles (1445) for the gpt-4o family.
 * Counting images as nothing let a request with images reserve far less than it then cost.
 */
const IMAGE_LOW_DETAIL = 85;
const IMAGE_MAX = 85 + 170 * 8;

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content
      .map((p) =>
        p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string'
          ? (p as { text: string }).text
          : '',
      )
      .join('\n');
  return '';
}

/**
 * A document's share of a prompt (a PDF's text and page images): a token for every 4 bytes of
 * the file, at least an image's and at most DOCUMENT_MAX (past every provider's page limit:
 * 100 pages of ~4.6k tokens at Anthropic, 1,000 of 258 at Google); a document by URL (its size
 * unknown here, as one by file id) counts DOCUMENT_MAX. Its bytes are never tokenized: base64 text costs the
 * tokenizer seconds a megabyte, and is not what the provider bills.
 */
const DOCUMENT_MAX = 500_000;
export const documentTokens = (bytes: number | null): number =>
  bytes === null ? DOCUMENT_MAX : Math.min(DOCUMENT_MAX, Math.max(IMAGE_MAX, Math.ceil(bytes / 4)));
/** What content of unknown size (a document by URL, context by reference) is held as. */
export const UNKNOWN_CONTENT_TOKENS = DOCUMENT_MAX;

/** The file size a base64 text of `chars` characters stands for (its padding aside). */
export const base64Bytes = (chars: number): number => Math.floor((chars * 3) / 4);

/** A data: URL's file size, or null for any other URL. */
function dataUrlBytes(url: unknown): number | null {
  if (typeof url !== 'string' || !url.startsWith('data:')) return null;
  const comma = url.indexOf(',');
  return comma < 0 ? null : base64Bytes(url.length - comma - 1);
}

/**
 * A part's tokens beside its text: images (OpenAI's chat and Responses parts) and documents
 * (a chat `file`, a Responses `input_file`, and the `document` parts other codecs count with).
 */
function mediaTokens(part: {
  type?: unknown;
  file?: { file_data?: unknown };
  file_data?: unknown;
  bytes?: number | null;
}): number {
  if (part.type === 'file') return documentTokens(dataUrlBytes(part.file?.file_data));
  if (part.type === 'input_file') return documentTokens(dataUrlBytes(part.file_data));
  if (part.type === 'document') return documentTokens(part.bytes ?? null);
  return 0;
}

function imageTokens(content: unknown): number {
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const p of content) {
    if (!p || typeof p !== 'object') continue;
    const part = p as { type?: unknown; image_url?: { detail?: unknown } | string; detail?: unknown };
    if (part.type !== 'image_url' && part.type !== 'input_image') {
      n += mediaTokens(part);
      continue;
    }
    const detail = typeof part.image_url === 'object' && part.image_url ? part.image_url.detail : part.detail;
    n += detail === 'low' ? IMAGE_LOW_DETAIL : IMAGE_MAX;
  }
  return n;
}

/**
 * A client's text is text: "<|endoftext|>" in a prompt counts as the characters it is, rather
 * than throwing (gpt-tokenizer refuses special tokens by default, which failed the request).
 */
const AS_TEXT = { disallowedSpecial: new Set<string>() };

/**
 * Exact counts of texts of `CACHED_FROM` characters or more, by their SHA-256. A coding agent
 * resends its system prompt, tool definitions and whole history with every turn, and a
 * translated Anthropic stream needs the exact count for `message_start`: tokenized anew, a
 * 100 KB prompt cost ~3 ms of the event loop per request (bench/big-context.ts --stream), where
 * hashing it takes ~0.2 ms. Keys are digests, not the texts, so the cache holds ~150 bytes an
 * entry (~7 MB full) whatever the text's size; a count is a pure function of its text, so a hit
 * is exact. Only well-formed texts are cached: hashing encodes to UTF-8, which turns a lone
 * surrogate into U+FFFD, so two different ill-formed texts could share a digest.
 */
const CACHED_FROM = 256;
const counted = new LRUCache<string, number>({ max: 50_000 });

export function countText(text: string): number {
  if (!text) return 0;
  if (text.length < CACHED_FROM) return loadTokenizer().countTokens(text, AS_TEXT);
  // The tokenizer reads a lone surrogate as U+FFFD, as toWellFormed writes it: the same count,
  // and a text that hashes to one digest only.
  const s = text.isWellFormed() ? text : text.toWellFormed();
  const key = hash('sha256', s, 'base64');
  let n = counted.get(key);
  if (n === undefined) {
    n = countLong(s);
    counted.set(key, n);
  }
  return n;
}

/**
 * Texts this long are counted before admission in slices, an event-loop turn apart (`warm`),
 * into the cache the exact count reads: the tokenizer takes ~1–6 µs a character (base64 the
 * slowest), so one 8 MB prompt counted at once held every other request for most of a minute.
 */
const SLICE = 16 * 1024;

/** Counts `s` into the cache in slices (cut before a space where one is near: pieces stay whole). */
async function warmCount(text: string): Promise<void> {
  const s = text.isWellFormed() ? text : text.toWellFormed();
  const key = hash('sha256', s, 'base64');
  if (counted.has(key)) return;
  let n = 0;
  for (let i = 0; i < s.length; ) {
    let end = Math.min(s.length, i + SLICE);
    const space = end < s.length ? s.lastIndexOf(' ', end) : -1;
    if (space > i + SLICE / 2) end = space;
    n += countLong(s.slice(i, end));
    i = end;
    await new Promise((r) => setImmediate(r));
  }
  counted.set(key, n);
}

/**
 * A run of this many letters or more (one word to the tokenizer's pre-split: an attacker's
 * random letters, a long unpunctuated stretch of CJK) is counted in pieces of RUN_PIECE: BPE's
 * cost grows with the square of a word's length (120 KB of random letters held the event loop
 * ~5 s, 40 KB 0.6 s; in 512-letter pieces 40 KB takes ~50 ms), and the sum of the pieces'
 * counts is within ~0.1 % of the whole's (a merge across a cut is lost, so it comes out a
 * little more; tokens.test.ts checks it is not less). Text with shorter words is counted
 * whole, exactly.
 */
const LONG_RUN = /[\p{L}\p{M}]{1025,}/gu;
const RUN_PIECE = 512;

function countLong(s: string): number {
  const tokenizer = loadTokenizer();
  LONG_RUN.lastIndex = 0;
  let m = LONG_RUN.exec(s);
  if (m === null) return tokenizer.countTokens(s, AS_TEXT);
  let n = 0;
  let from = 0;
  for (; m !== null; m = LONG_RUN.exec(s)) {
    if (m.index > from) n += tokenizer.countTokens(s.slice(from, m.index), AS_TEXT);
    const end = m.index + m[0].length;
    for (let i = m.index; i < end; i += RUN_PIECE)
      n += tokenizer.countTokens(s.slice(i, Math.min(i + RUN_PIECE, end)), AS_TEXT);
    from = end;
  }
  if (from < s.length) n += tokenizer.countTokens(s.slice(from), AS_TEXT);
  return n;
}

/**
 * A chat prompt's size with `size` as the measure of each text (chat overheads added); `extra`
 * is the tool and function definitions as JSON, made once by the caller.
 */
function chatPromptSize(messages: unknown[], extra: string | undefined, size: (s: string) => number): number {
  let n = REPLY_PRIMING;
  for (const m of messages) {
    n += PER_MESSAGE;
    if (m && typeof m === 'object') {
      const msg = m as Record<string, unknown>;
      n += size(textOf(msg.content)) + imageTokens(msg.content);
      if (typeof msg.name === 'string') n += PER_NAME + size(msg.name);
      if (msg.tool_calls !== undefined) n += size(JSON.stringify(msg.tool_calls) ?? '');
    }
  }
  // Tool and function definitions are billed as prompt tokens too.
  if (extra !== undefined) n += size(extra);
  return n;
}

/** Definitions as the counts measure them (JSON; none when absent). */
const jsonOf = (extra: unknown): string | undefined =>
  extra === undefined ? undefined : (JSON.stringify(extra) ?? '');

export const countChatPrompt = (messages: unknown[], extra?: unknown): number =>
  chatPromptSize(messages, jsonOf(extra), countText);

export function countInputs(input: unknown): number {
  if (typeof input === 'string') return countText(input);
  if (Array.isArray(input)) {
    let n = 0;
    for (const item of input) {
      if (typeof item === 'string') n += countText(item);
      else if (typeof item === 'number') n += 1;
      else if (Array.isArray(item)) n += item.length;
    }
    return n;
  }
  return 0;
}

// ── a free upper bound, for admission ─────────────────────────────────────────────────────
// Every o200k token stands for at least one UTF-8 byte of its text, so a text's byte length
// is never below its token count. The bound has the shape of countChatPrompt with each count
// replaced by that byte length: never below the exact count, and it costs no tokenizing.

const bytes = (s: string) => (s ? Buffer.byteLength(s, 'utf8') : 0);

/** ≥ countChatPrompt(messages, extra), always; in time linear in the text with no tokenizing. */
export const chatPromptBound = (messages: unknown[], extra?: unknown): number =>
  chatPromptSize(messages, jsonOf(extra), bytes);

/** What a codec puts in IngressRequest for a chat-shaped prompt. */
export interface PromptCount {
  promptTokens: number;
  exactPromptTokens?: () => number;
  /**
   * Counts the prompt's long texts ahead, between event-loop turns, so `exactPromptTokens`
   * then reads them from the cache (see SLICE); only worth it for a long prompt.
   */
  warm?: () => Promise<void>;
}

/** A prompt whose bound is this large is counted ahead (`warm`) before it is admitted. */
export const WARM_FROM = 4 * SLICE;

/**
 * A chat prompt's count for admission: the bound, with the exact count on demand. Admission
 * holds the bound where every limit has room to spare (admission/admission.ts `roomNeeded`), so
 * most requests are never tokenized: ~2–20 µs for a short prompt, and a long one would hold the
 * event loop for milliseconds (0.12–0.35 µs a token here: ~3 ms for a 100 KB prompt).
 */
export function promptCount(messages: unknown[], extra?: unknown): PromptCount {
  const json = jsonOf(extra); // a coding agent's tools are tens of KB: serialised once
  return {
    promptTokens: chatPromptSize(messages, json, bytes),
    exactPromptTokens: () => chatPromptSize(messages, json, countText),
    async warm() {
      const long: string[] = [];
      chatPromptSize(messages, json, (s) => {
        if (s.length >= SLICE) long.push(s);
        return 0;
      });
      for (const s of long) await warmCount(s);
    },
  };
}

/**
 * What a request defines beside its messages and is billed as prompt tokens: tool
 * declarations and a structured output's schema (the real APIs count both). The tools alone
 * when there is no schema, so the counts of requests without one stay as they were.
 */
export function definitionsOf(tools: unknown, schema: unknown): unknown {
  if (schema === undefined || schema === null) return tools;
  return tools === undefined ? [schema] : [tools, schema];
}

/** A response format's schema when it has one (`{type: "json_schema", …}`, as OpenAI and Anthropic send it). */
export const schemaOf = (format: unknown): unknown =>
  format !== null && typeof format === 'object' && (format as { type?: unknown }).type === 'json_schema'
    ? format
    : undefined;

/**
 * A PromptCount's exact count, a long prompt counted ahead in slices first (`warm`): for the
 * free counting endpoints, where nothing else would spare the event loop.
 */
export async function exactCountAhead(c: PromptCount): Promise<number> {
  if (c.warm && c.promptTokens >= WARM_FROM) await c.warm();
  return exactCount(c);
}

/** A PromptCount's exact count (tokenizing when it holds the bound). */
export const exactCount = (c: PromptCount): number => c.exactPromptTokens?.() ?? c.promptTokens;
