/**
 * A bearer-token call with one retry on 401, for sinks that fetch their own tokens.
 *
 * Invariants:
 * - A 401 invalidates the token used (only if still current, see TokenCache) and the
 *   call is sent once more with a fresh one; a second 401 throws `authRefused`.
 * - Failures getting a token never reach the caller unclassified: a PermanentError
 *   (refused credentials) becomes `authRefused` (transient, long hint: no event is at
 *   fault), anything else gets `what` as context.
 */
import { PermanentError, TransientError } from '../../../protocols/errors.js';
import { withContext } from './failures.js';
import type { Answer } from './timed-fetch.js';

export interface TokenSourceOf<T> {
  get(): Promise<T>;
  invalidate(token: T): void;
}

export interface TokenRetryOptions {
  /** The attempt, for messages: "upserting customer/eid:C-1". */
  what: string;
  /** The sink's wording of refused credentials (classify.ts). */
  authRefused: (what: string, error: PermanentError) => TransientError;
  /** Why a fresh token was refused too, e.g. INVALID_LOGIN. */
  refusedTwice: () => PermanentError;
}

export async function sendWithTokenRetry<T>(tokens: TokenSourceOf<T>, send: (token: T) => Promise<Answer>, options: TokenRetryOptions): Promise<Answer> {
  const { what, authRefused } = options;
  const token = async (): Promise<T> => {
    try {
      return await tokens.get();
    } catch (error) {
      throw error instanceof PermanentError ? authRefused(what, error) : withContext(what, error);
    }
  };
  let current = await token();
  let answer = await send(current);
  if (answer.status === 401) {
    tokens.invalidate(current);
    current = await token();
    answer = await send(current);
    if (answer.status === 401) throw authRefused(what, options.refusedTwice());
  }
  return answer;
}
