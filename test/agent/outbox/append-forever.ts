// Child process for the kill -9 test: appends batches of 10 events with a progress state, forever.
import { join } from 'node:path';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { milestoneDraft } from '../../helpers/drafts.js';

const outbox = new Outbox({ path: join(process.argv[2]!, 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e12, maxEvents: 1e9, onFull: 'pause' });
let batches = 0;
const T0 = Date.parse('2026-11-23T08:00:00Z');
function step(): void {
  const drafts = Array.from({ length: 10 }, (_, i) => milestoneDraft(`WO-${batches}`, 'quantity-reported', T0 + batches * 10 + i, i));
  batches++;
  outbox.append('line', drafts, [{ key: 'progress', value: { batches } }]);
  process.stdout.write('committed\n');
  setImmediate(step); // yield so stdout flushes and the parent can pick its moment
}
step();
