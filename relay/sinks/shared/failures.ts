/**
 * Failure helpers every sink's classify.ts builds on. Each keeps the failure's kind
 * (transient or permanent), its retry hint and its cause; none reads a response body,
 * so no request or answer content can leak into a message.
 */
import { describeError, PermanentError, TransientError } from '../../../protocols/errors.js';

/**
 * Why no HTTP answer came (refused, reset, DNS, timeout, abort), in words: a timeout
 * names `timeoutMs`; an abort can only come from the sink's stop signal.
 */
export function describeNetworkFailure(error: unknown, timeoutMs: number): string {
  const name = error instanceof Error ? error.name : '';
  if (name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  if (name === 'AbortError') return 'aborted because the sink is stopping';
  return describeError(error);
}

/** Classifies a failure to get any HTTP answer: always transient. */
export function classifyNetworkError(what: string, error: unknown, timeoutMs: number): TransientError {
  return new TransientError(`${what}: ${describeNetworkFailure(error, timeoutMs)}`, { cause: error });
}

/** Re-raises a classified failure with more context, keeping its kind and retry hint. */
export function withContext(what: string, error: unknown): TransientError | PermanentError {
  if (error instanceof PermanentError) return new PermanentError(`${what}: ${error.message}`, { code: error.code, cause: error });
  if (error instanceof TransientError) return withRetryHint(`${what}: ${error.message}`, error);
  return new TransientError(`${what}: ${describeError(error)}`, { cause: error });
}

/**
 * An item left out because an earlier `attempt` ("write", "call", ...) of its batch
 * failed transiently: errored with that failure's retry hint.
 */
export function notAttempted(attempt: string, cause: TransientError): TransientError {
  return withRetryHint(`not attempted: an earlier ${attempt} in this batch failed transiently (${cause.message})`, cause);
}

function withRetryHint(message: string, cause: TransientError): TransientError {
  return new TransientError(message, {
    cause,
    ...(cause.retryAfterMs === undefined ? {} : { retryAfterMs: cause.retryAfterMs }),
  });
}
