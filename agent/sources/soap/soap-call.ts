/**
 * One WSDL operation behind a small interface: `call(args)` answers the parsed response
 * object or throws a classified TransientError / PermanentError (soap-errors.ts).
 *
 * The WSDL is read lazily on the first call and again after a permanent failure (the ERP may
 * have been upgraded). WS-Security UsernameToken and the HTTPS trust (custom CA) apply to the
 * WSDL fetch and to every call.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import soap, { type Client } from 'soap';
import { PermanentError } from '../../../protocols/errors.js';
import type { SoapSourceConfig } from './config.js';
import { classifySoapError } from './soap-errors.js';

type AsyncOperation = (args: unknown, options?: Record<string, unknown>) => Promise<[unknown, ...unknown[]]>;

export class SoapOperation {
  private client: Client | undefined;
  private readonly httpsAgent: https.Agent | undefined;

  constructor(private readonly config: Pick<SoapSourceConfig, 'wsdlUrl' | 'endpoint' | 'operation' | 'timeoutMs' | 'auth' | 'tls'>) {
    const tls = config.tls;
    if (tls) {
      let ca: Buffer | undefined;
      if (tls.caFile) {
        try {
          ca = readFileSync(tls.caFile);
        } catch (e) {
          throw new PermanentError(`reading tls.caFile ${tls.caFile}: ${(e as Error).message}`, { code: 'config' });
        }
      }
      this.httpsAgent = new https.Agent({ keepAlive: true, rejectUnauthorized: tls.rejectUnauthorized, ...(ca ? { ca } : {}) });
    }
  }

  /** Calls the operation with `args` and answers its parsed response. */
  async call(args: Record<string, unknown>): Promise<unknown> {
    const op = await this.operation();
    try {
      const [result] = await op(args, this.requestOptions());
      return result;
    } catch (e) {
      const error = classifySoapError(e, `calling ${this.config.operation}`);
      if (error instanceof PermanentError) this.client = undefined; // read the WSDL again next time
      throw error;
    }
  }

  /** Forgets the parsed WSDL, so the next call reads it again. */
  reset(): void {
    this.client = undefined;
  }

  close(): void {
    this.client = undefined;
    this.httpsAgent?.destroy();
  }

  private requestOptions(): Record<string, unknown> {
    return { timeout: this.config.timeoutMs, ...(this.httpsAgent ? { httpsAgent: this.httpsAgent } : {}) };
  }

  private async operation(): Promise<AsyncOperation> {
    let client = this.client;
    if (!client) {
      const c = this.config;
      try {
        client = await soap.createClientAsync(
          c.wsdlUrl,
          {
            disableCache: true, // a WSDL re-read after a permanent failure must be the current one
            wsdl_options: this.requestOptions(),
            ...(c.endpoint ? { endpoint: c.endpoint } : {}),
          },
          c.endpoint,
        );
      } catch (e) {
        throw classifySoapError(e, `reading the WSDL ${c.wsdlUrl}`);
      }
      if (c.auth) client.setSecurity(new soap.WSSecurity(c.auth.username, c.auth.password, { passwordType: 'PasswordText', hasTimeStamp: true }));
      this.client = client;
    }
    const fn = (client as unknown as Record<string, unknown>)[`${this.config.operation}Async`];
    if (typeof fn !== 'function') {
      const description = client.describe() as Record<string, Record<string, Record<string, unknown>>>;
      const offered = Object.values(description).flatMap((ports) => Object.values(ports).flatMap((port) => Object.keys(port)));
      this.client = undefined;
      throw new PermanentError(`the WSDL ${this.config.wsdlUrl} has no operation ${this.config.operation} (it offers ${offered.join(', ') || 'none'})`, { code: 'config' });
    }
    return (fn as AsyncOperation).bind(client);
  }
}
