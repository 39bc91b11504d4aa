/**
 * The raw baseline of the delivery benchmarks: the same records as the Salesforce sink would
 * write (first default mapping), 200 per sObject Collections call, `concurrency` calls in
 * flight, plain fetch to the same emulator. Returns events/s.
 */
import type { CloudEventV1 } from '../protocols/events/envelope.js';
import { applyFieldMap } from '../relay/sinks/mapping.js';
import { defaultSalesforceMappings } from '../relay/sinks/salesforce/index.js';
import type { SalesforceEmulator } from '../test/emulators/salesforce/salesforce-emulator.js';

export const BENCH_MAPPING = defaultSalesforceMappings[0]!;
export const BENCH_AUTH = { flow: 'client_credentials' as const, clientId: 'plantlink-client', clientSecret: 'plantlink-secret' };

export async function rawCollectionsRate(crm: SalesforceEmulator, events: readonly CloudEventV1[], concurrency: number): Promise<number> {
  const mapping = BENCH_MAPPING;
  const token = (await (
    await fetch(`${crm.url}/services/oauth2/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: BENCH_AUTH.clientId, client_secret: BENCH_AUTH.clientSecret }),
    })
  ).json()) as { access_token: string };
  const bodies: string[] = [];
  for (let i = 0; i < events.length; i += 200) {
    const records = events.slice(i, i + 200).map((e) => ({ attributes: { type: mapping.object }, [mapping.externalIdField]: `raw-${e.id}`, ...applyFieldMap(e, mapping.fields ?? {}) }));
    bodies.push(JSON.stringify({ allOrNone: false, records }));
  }
  const t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const res = await fetch(`${crm.url}/services/data/v60.0/composite/sobjects/${mapping.object}/${mapping.externalIdField}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' },
          body,
        });
        await res.text();
      }
    }),
  );
  return events.length / ((performance.now() - t) / 1000);
}
