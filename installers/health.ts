/**
 * `plantlink relay health`: asks the relay running on this machine whether it can take work
 * (GET /readyz on its own port), for container HEALTHCHECKs and service monitors that have no
 * HTTP client of their own (the container image has no shell and no curl).
 *
 * The probe goes to the relay's own listen address on this machine and sends no credentials, so
 * with TLS it does not verify the certificate: the certificate names the public host, not the
 * loopback address the probe connects to.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface Readiness {
  ready: boolean;
  detail: string;
}

export function probeReady(baseUrl: string, timeoutMs = 5000): Promise<Readiness> {
  const url = new URL('/readyz', baseUrl);
  const https = url.protocol === 'https:';
  return new Promise((resolve) => {
    const req = (https ? httpsRequest : httpRequest)(url, { method: 'GET', timeout: timeoutMs, ...(https ? { rejectUnauthorized: false } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 4096) body += chunk; // the reason only; /readyz answers are small
      });
      res.on('end', () => resolve({ ready: res.statusCode === 200, detail: `HTTP ${res.statusCode ?? 0} ${body.trim().slice(0, 300)}` }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ ready: false, detail: `${url.href}: ${e.message}` }));
    req.end();
  });
}
