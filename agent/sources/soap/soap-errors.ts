/**
 * The one place SOAP call failures are classified (see protocols/errors.ts).
 *
 * Transient (retried with backoff): soap:Server / soap:Receiver faults, HTTP 408/425/429/5xx
 * without a fault, timeouts and network errors. Permanent (surfaced, polled again on schedule,
 * never retried in a tight loop): soap:Client / soap:Sender and other faults, other HTTP 4xx,
 * TLS trust failures, WSDLs that do not parse or lack the operation, responses of an
 * unexpected shape.
 *
 * The errors the `soap` package raises carry the axios request, whose body holds the
 * WS-Security password in clear text (PasswordText). They are never kept as `cause`: the cause
 * is a stripped copy with the message, code and HTTP status only, so no log can leak it.
 */
import { isRetryableStatus, parseRetryAfter, PermanentError, TransientError } from '../../../protocols/errors.js';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED', // axios: timeout
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND', // plant DNS is flaky more often than a name is wrong; a wrong name keeps failing visibly
  'ERR_SOCKET_CONNECTION_TIMEOUT',
  'ERR_NETWORK',
  'ETIMEOUT',
]);

interface RawSoapError {
  message?: unknown;
  code?: unknown;
  response?: { status?: unknown; headers?: Record<string, unknown> };
  root?: { Envelope?: { Body?: { Fault?: unknown } } };
}

export interface SoapFaultInfo {
  /** Fault code as sent, e.g. `soap:Server`, `SOAP-ENV:Client: AuthenticationFailure`. */
  code: string;
  reason: string;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (value && typeof value === 'object' && '$value' in value) return text((value as { $value: unknown }).$value);
  return undefined;
}

/** The SOAP 1.1 or 1.2 Fault a `soap` client error carries, if any. */
export function soapFault(e: unknown): SoapFaultInfo | undefined {
  const fault = (e as RawSoapError | undefined)?.root?.Envelope?.Body?.Fault as Record<string, unknown> | undefined;
  if (!fault || typeof fault !== 'object') return undefined;
  const code11 = text(fault.faultcode);
  if (code11 !== undefined) return { code: code11, reason: text(fault.faultstring) ?? '' };
  const code = fault.Code as { Value?: unknown; Subcode?: { Value?: unknown } } | undefined;
  const value = text(code?.Value);
  if (value === undefined) return undefined;
  const sub = text(code?.Subcode?.Value);
  const reason = text((fault.Reason as { Text?: unknown } | undefined)?.Text) ?? '';
  return { code: sub ? `${value}: ${sub}` : value, reason };
}

function stripped(e: unknown, status: number | undefined): Error {
  const raw = e as RawSoapError;
  const copy = new Error(typeof raw?.message === 'string' ? raw.message : String(e));
  if (typeof raw?.code === 'string') (copy as Error & { code?: string }).code = raw.code;
  if (status !== undefined) (copy as Error & { status?: number }).status = status;
  return copy;
}

/** Classifies a failure of `what` (e.g. `calling GetShipmentChanges`). */
export function classifySoapError(e: unknown, what: string): TransientError | PermanentError {
  if (e instanceof TransientError || e instanceof PermanentError) return e;
  const raw = (e ?? {}) as RawSoapError;
  const statusValue = raw.response?.status;
  let status = typeof statusValue === 'number' ? statusValue : undefined;
  const cause = stripped(e, status);
  const fault = soapFault(e);
  if (fault) {
    const local = fault.code.split(':').map((s) => s.trim()).find((part) => /^(Server|Receiver|Client|Sender)$/.test(part)) ?? '';
    const message = `${what}: SOAP Fault ${fault.code}: ${fault.reason}`;
    if (local === 'Server' || local === 'Receiver') return new TransientError(message, { cause });
    return new PermanentError(message, { cause, code: 'soap-fault' });
  }
  const message = `${what}: ${cause.message}`;
  if (status === undefined) {
    // The WSDL fetch reports a bad HTTP status in its message only.
    const m = /Code: (\d{3})/.exec(cause.message);
    if (m) status = Number(m[1]);
  }
  if (status !== undefined && status >= 400) {
    if (isRetryableStatus(status)) {
      const retryAfter = parseRetryAfter(text(raw.response?.headers?.['retry-after']));
      return new TransientError(`${what}: HTTP ${status}`, { cause, ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }) });
    }
    return new PermanentError(`${what}: HTTP ${status}`, { cause, code: `http-${status}` });
  }
  const code = typeof raw.code === 'string' ? raw.code : undefined;
  if (code && NETWORK_CODES.has(code)) return new TransientError(message, { cause });
  if (/socket hang up|timeout of \d+ms exceeded|network error/i.test(cause.message)) return new TransientError(message, { cause });
  if (code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)) {
    return new PermanentError(`${message} (check tls.caFile)`, { cause, code: 'tls' });
  }
  return new PermanentError(message, { cause, code: code ?? 'soap' });
}
