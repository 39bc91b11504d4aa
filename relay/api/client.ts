/**
 * A small client for the relay's operator API, for CLI commands that ask the running relay
 * (another process) rather than open its inbox: e.g. `plantlink relay agents`.
 * The token comes from `--token` or PLANTLINK_API_TOKEN; it is sent only as a bearer header.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { RelayConfig } from '../config.js';

/** The operator API's base URL for a relay config: its listen address (a wildcard means this machine). */
export function relayApiUrl(config: Pick<RelayConfig, 'relay'>): string {
  const { host, port, tls } = config.relay.listen;
  const h = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return `${tls ? 'https' : 'http'}://${h}:${port}`;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
  }
}

export interface ApiClientOptions {
  baseUrl: string;
  token: string;
  /** PEM files trusted for https, besides the system's CAs (e.g. the relay's own self-signed certificate). */
  caFiles?: readonly string[];
  timeoutMs?: number;
}

/** GETs `path` and parses the JSON answer; throws ApiError with the relay's reason otherwise. */
export function apiGet<T>(options: ApiClientOptions, path: string): Promise<T> {
  return apiCall<T>(options, 'GET', path);
}

/** POSTs `body` as JSON to `path` and parses the JSON answer. */
export function apiPost<T>(options: ApiClientOptions, path: string, body: unknown): Promise<T> {
  return apiCall<T>(options, 'POST', path, body);
}

function apiCall<T>(options: ApiClientOptions, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const url = new URL(path, options.baseUrl);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const https = url.protocol === 'https:';
  const ca = https && options.caFiles?.length ? [...rootCertificates, ...options.caFiles.map((f) => readFileSync(f, 'utf8'))] : undefined;
  return new Promise<T>((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method,
        headers: {
          authorization: `Bearer ${options.token}`,
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
        timeout: options.timeoutMs ?? 10_000,
        ...(ca ? { ca } : {}),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          if (status >= 200 && status < 300 && json !== undefined) return resolve(json as T);
          const reason = (json as { error?: string } | undefined)?.error ?? text.trim().slice(0, 300);
          reject(new ApiError(`relay API ${url.pathname}: HTTP ${status}${reason ? `: ${reason}` : ''}`, status));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 10_000} ms`)));
    req.on('error', (e) => reject(new ApiError(`cannot reach the relay API at ${url.origin}: ${e.message}`, undefined)));
    req.end(payload);
  });
}
