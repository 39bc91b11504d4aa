/** Sink-against-emulator setup and outcome assertions shared by the Salesforce sink tests. */
import { afterEach, expect } from 'vitest';
import { PermanentError, TransientError } from '../../../../protocols/errors.js';
import { createLogger, type Logger } from '../../../../protocols/log.js';
import { defaultSalesforceMappings, SalesforceSink, type SalesforceSinkConfigInput } from '../../../../relay/sinks/salesforce/index.js';
import type { DeliveryItem, Outcome } from '../../../../relay/sinks/sink.js';
import { SalesforceEmulator, type SalesforceEmulatorOptions } from '../../../emulators/salesforce/salesforce-emulator.js';
import type { milestoneEvent } from './fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

function captureLogger(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const logger = createLogger('salesforce-sink-test', { level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
  return { logger, text: () => lines.join('') };
}

/** A started emulator and a sink pointed at it (not started); both stopped after the test. */
export async function setup(
  options: { emulator?: SalesforceEmulatorOptions; sink?: Partial<SalesforceSinkConfigInput> } = {},
): Promise<{ emulator: SalesforceEmulator; sink: SalesforceSink; logs: () => string }> {
  const emulator = await SalesforceEmulator.start(options.emulator);
  const { logger, text } = captureLogger();
  const sink = new SalesforceSink(
    {
      name: 'crm',
      kind: 'salesforce',
      loginUrl: emulator.url,
      auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' },
      timeoutMs: 5_000,
      mappings: defaultSalesforceMappings,
      ...options.sink,
    },
    logger,
  );
  cleanups.push(async () => {
    await sink.stop();
    await emulator.stop();
  });
  return { emulator, sink, logs: text };
}

export const fresh = (...events: ReturnType<typeof milestoneEvent>[]): DeliveryItem[] => events.map((event) => ({ event, stale: false }));

export function expectDelivered(outcome: Outcome | undefined): string[] {
  if (outcome?.status !== 'delivered') throw new Error(`expected delivered, got ${JSON.stringify(outcome)}`);
  return outcome.recordIds;
}

export function expectErrored(outcome: Outcome | undefined): TransientError {
  if (outcome?.status !== 'errored') throw new Error(`expected errored, got ${JSON.stringify(outcome)}`);
  expect(outcome.error).toBeInstanceOf(TransientError);
  return outcome.error;
}

export function expectRejected(outcome: Outcome | undefined): PermanentError {
  if (outcome?.status !== 'rejected') throw new Error(`expected rejected, got ${JSON.stringify(outcome)}`);
  expect(outcome.error).toBeInstanceOf(PermanentError);
  return outcome.error;
}
