/**
 * An in-memory historian for simulated servers whose storage belongs to the caller: stop
 * a server, build a new one, install a new MemoryHistorian over the same array, and the
 * history from before the restart is still readable (as a plant historian's would be).
 *
 * Wiring (node-opcua 2.182): `addressSpace.installHistoricalDataNode(node, { historian })`
 * sets `historizing` and the HistoryRead access level bit itself, pushes the node's current
 * value at once, then every `value_changed` of the node: each setValueFromSource whose
 * value, status or source timestamp differs from the previous one.
 *
 * Invariants:
 * - `values` is sorted by source timestamp (ms, then picoseconds), strictly increasing.
 *   push() drops a value not newer than the last one: install pushes the node's current
 *   value again, which after a restart is the last one stored.
 * - At most `maxValues` are kept (the oldest go first). Default: no limit.
 *
 * ReadRawModifiedDetails, as node-opcua hands it to extractDataValues (it has already
 * swapped startTime and endTime when endTime < startTime, and asks for reverseDataValue):
 * startTime and endTime are inclusive, either may be unset (min date). isReversed walks
 * from the newest value backwards; maxNumberToExtract 0 means all. returnBounds is ignored:
 * no bounding values are ever returned. isReadModified never reaches a historian (node-opcua
 * answers it itself).
 */
import { isMinDate, type DataValue, type IVariableHistorian, type ReadRawModifiedDetails } from 'node-opcua';

/** An OPC UA instant: ms and the picoseconds below them (DateTime has 100 ns resolution). */
type Instant = [ms: number, ps: number];
/** Unset (null or min date) -> undefined. A decoded DateTime carries its sub-ms part as a property of the Date. */
const bound = (d: (Date & { picoseconds?: number }) | null): Instant | undefined =>
  !d || isMinDate(d) ? undefined : [d.getTime(), d.picoseconds ?? 0];
const ofValue = (v: DataValue): Instant => [v.sourceTimestamp?.getTime() ?? 0, v.sourcePicoseconds ?? 0];
const compare = (a: Instant, b: Instant): number => a[0] - b[0] || a[1] - b[1];

export class MemoryHistorian implements IVariableHistorian {
  constructor(
    readonly values: DataValue[],
    private readonly maxValues = Number.POSITIVE_INFINITY,
  ) {}

  async push(value: DataValue): Promise<void> {
    const last = this.values[this.values.length - 1];
    if (!value.sourceTimestamp) return; // cannot be placed in time; setValueFromSource always stamps
    if (last && compare(ofValue(value), ofValue(last)) <= 0) return;
    this.values.push(value);
    if (this.values.length > this.maxValues) this.values.splice(0, this.values.length - this.maxValues);
  }

  extractDataValues(
    details: ReadRawModifiedDetails,
    maxNumberToExtract: number,
    isReversed: boolean,
    reverseDataValue: boolean,
    callback: (err: Error | null, dataValue?: DataValue[]) => void,
  ): void {
    const start = bound(details.startTime);
    const end = bound(details.endTime);
    // a new array: node-opcua splices it to hand out continuation points
    let found = this.values.filter((v) => (!start || compare(ofValue(v), start) >= 0) && (!end || compare(ofValue(v), end) <= 0));
    if (isReversed) found.reverse();
    if (maxNumberToExtract > 0) found = found.slice(0, maxNumberToExtract);
    if (reverseDataValue) found.reverse();
    callback(null, found);
  }
}
