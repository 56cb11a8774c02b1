// Money is an integer count of nano-USD (1 USD = 1e9). Prices are integer nano-USD per
// 1M tokens, multipliers integer parts-per-million. A request's cost is computed in BigInt
// from those integers and rounded up once, to the nano-USD, so the ledger never sees a float.
import { AppError } from '../http/errors.js';

export const NANO_PER_USD = 1_000_000_000;
/** Largest amount the ledger holds: ~9.0M USD keeps every sum a safe JS integer. */
export const MAX_NANO = Number.MAX_SAFE_INTEGER;
export const MAX_USD = Math.floor(MAX_NANO / NANO_PER_USD);

/** Significant digits a decimal keeps through a JSON number (a double's DBL_DIG). */
const EXACT_DIGITS = 15;

/**
 * Exact decimal → integer scaling: uses the number's shortest round-trip decimal form, so
 * 0.1 USD is exactly 100_000_000 nano-USD. Returns null when the value has more decimal
 * places than the scale can hold or does not fit, or more significant digits than a JSON
 * number carries exactly: 8999999.999999999 arrives as 8999999.999999998, a different amount.
 */
export function scaleDecimal(value: number, decimals: number): number | null {
  if (!Number.isFinite(value) || value < 0) return null;
  let s = String(value);
  if (/e/i.test(s)) s = value.toFixed(20).replace(/0+$/, '');
  if (s.replace('.', '').replace(/^0+/, '').replace(/0+$/, '').length > EXACT_DIGITS) return null;
  const [intPart, fracPart = ''] = s.split('.');
  const frac = fracPart.replace(/0+$/, '');
  if (frac.length > decimals) return null;
  const big = BigInt(intPart!) * 10n ** BigInt(decimals) + BigInt((frac || '0').padEnd(decimals, '0'));
  if (big > BigInt(MAX_NANO)) return null;
  return Number(big);
}

export const usdToNano = (usd: number) => scaleDecimal(usd, 9);

/** A USD amount its schema has bounded, as nano-USD: a 422 naming `param` past 9 decimal places. */
export function usdNano(usd: number, param: string): number {
  const nano = usdToNano(usd);
  if (nano === null)
    throw new AppError('validation_error', `${param}: at most 9 decimal places and 15 significant digits`, {
      param,
    });
  return nano;
}

/** For display and JSON only; never fed back into arithmetic. */
export const nanoToUsd = (nano: number) => nano / NANO_PER_USD;

export const PPM = 1_000_000;
export const multiplierToPpm = (m: number) => scaleDecimal(m, 6);

/** A multiplier its schema has bounded, as ppm: a 422 naming `param` past 6 decimal places. */
export function multiplierPpm(m: number, param: string): number {
  const ppm = multiplierToPpm(m);
  if (ppm === null) throw new AppError('validation_error', `${param}: at most 6 decimal places`, { param });
  return ppm;
}

export interface Price {
  inputNanoPerM: number;
  outputNanoPerM: number;
  /** null = cached input (cache reads) billed at the input price. */
  cachedInputNanoPerM: number | null;
  /** null = prompt-cache writes billed at the input price. */
  cacheWriteNanoPerM: number | null;
  /**
   * Prompt-cache writes kept for an hour (Anthropic's `ttl: "1h"`); null = twice the input
   * price, Anthropic's published rate for them.
   */
  cacheWrite1hNanoPerM: number | null;
  /**
   * Web searches a provider's server-side search tool ran (Anthropic `web_search`, OpenAI
   * Responses `web_search`, Gemini Google Search grounding), nano-USD per 1,000; null = 10 USD
   * per 1,000, Anthropic's and OpenAI's published rate.
   */
  webSearchNanoPerK: number | null;
  /**
   * What an answer at OpenAI's priority processing (`service_tier: "priority"`) costs against
   * the standard one, parts per million (2× = 2,000,000) of its token cost; null = the model is
   * not offered at priority (a request asking for it is refused).
   */
  priorityPpm: number | null;
}

export interface TokenUsage {
  /** Every input token: uncached + read from the provider's cache + written to it. */
  promptTokens: number;
  /** Part of promptTokens read from the provider's cache. */
  cachedTokens: number;
  /** Part of promptTokens written to the provider's cache. */
  cacheWriteTokens: number;
  /** Part of cacheWriteTokens written for an hour rather than minutes. */
  cacheWrite1hTokens?: number;
  completionTokens: number;
  /** Searches the provider's search tool ran for the request, billed per search. */
  webSearches?: number;
  /** The answer came at priority processing: its tokens cost `Price.priorityPpm` of the standard. */
  priority?: boolean;
}

/**
 * cost = ceil(((uncached·in + cacheRead·cachedIn + cacheWrite·cacheWriteIn
 *        + cacheWrite1h·cacheWrite1hIn + completion·out) · tier + searches·search·1e3)
 *        · multiplier / 1e6 / 1e6), nano-USD, in BigInt. A search's price is per 1,000, the
 * tokens' per 1M; `tier` is the priority multiplier for an answer at priority, else 1. Cache
 * reads and writes are counted within promptTokens (reads first, hour-long writes within
 * writes), so together they never bill more input than was sent. A usage without
 * `cacheWriteTokens` counts none.
 */
export function costNano(
  usage: Omit<TokenUsage, 'cacheWriteTokens'> & { cacheWriteTokens?: number },
  price: Price,
  multiplierPpm: number,
): number {
  const prompt = Math.max(0, usage.promptTokens);
  const read = Math.max(0, Math.min(usage.cachedTokens, prompt));
  const written = Math.max(0, Math.min(usage.cacheWriteTokens ?? 0, prompt - read));
  const writtenForHour = Math.max(0, Math.min(usage.cacheWrite1hTokens ?? 0, written));
  const uncached = BigInt(prompt - read - written);
  const tokens =
    uncached * BigInt(price.inputNanoPerM) +
    BigInt(read) * BigInt(cacheReadPrice(price)) +
    BigInt(written - writtenForHour) * BigInt(cacheWritePrice(price)) +
    BigInt(writtenForHour) * BigInt(cacheWrite1hPrice(price)) +
    BigInt(usage.completionTokens) * BigInt(price.outputNanoPerM);
  const tier = BigInt(usage.priority ? (price.priorityPpm ?? PPM) : PPM);
  const searches = BigInt(Math.max(0, usage.webSearches ?? 0)) * BigInt(webSearchPrice(price)) * 1000n;
  const numerator = (tokens * tier + searches * BigInt(PPM)) * BigInt(multiplierPpm);
  const denominator = 1_000_000n * BigInt(PPM) * BigInt(PPM);
  const result = (numerator + denominator - 1n) / denominator;
  return result > BigInt(MAX_NANO) ? MAX_NANO : Number(result);
}

const cacheReadPrice = (p: Price) => p.cachedInputNanoPerM ?? p.inputNanoPerM;
const cacheWritePrice = (p: Price) => p.cacheWriteNanoPerM ?? p.inputNanoPerM;
const cacheWrite1hPrice = (p: Price) => p.cacheWrite1hNanoPerM ?? 2 * p.inputNanoPerM;
/** 10 USD per 1,000 searches when unset. */
export const DEFAULT_WEB_SEARCH_NANO_PER_K = 10 * NANO_PER_USD;
const webSearchPrice = (p: Price) => p.webSearchNanoPerK ?? DEFAULT_WEB_SEARCH_NANO_PER_K;

/** The most a request may use: its prompt and output cap, and what it asked for that costs more. */
export interface WorstUsage {
  promptTokens: number;
  completionTokens: number;
  /** An Anthropic cache breakpoint asks for an hour (`ttl: "1h"`). */
  cachesForHour?: boolean;
  /** The searches its search tools may run. */
  webSearches?: number;
  /** It asks for priority processing. */
  priority?: boolean;
}

/**
 * The most a request can cost: every input token at the dearest way the provider may bill it
 * (a cache write may cost more than plain input; one kept for an hour only when the request
 * asked for that), each search it allows, at priority when it asks for that, so what is held
 * for a request is never less than what it is charged.
 */
export function worstCostNano(w: WorstUsage, price: Price, multiplierPpm: number): number {
  const dearest = Math.max(
    price.inputNanoPerM,
    cacheReadPrice(price),
    cacheWritePrice(price),
    w.cachesForHour ? cacheWrite1hPrice(price) : 0,
  );
  return costNano(
    {
      promptTokens: w.promptTokens,
      cachedTokens: 0,
      completionTokens: w.completionTokens,
      webSearches: w.webSearches ?? 0,
      priority: w.priority === true,
    },
    { ...price, inputNanoPerM: dearest },
    multiplierPpm,
  );
}
