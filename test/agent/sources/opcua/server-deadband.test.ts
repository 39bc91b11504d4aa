import { describe, expect, it } from 'vitest';
import { initialLineState, type LineState, type NodeRole } from '../../../../agent/sources/opcua/line-machine.js';
import { countersToReadBack, ServerReferences, type ReadBackView } from '../../../../agent/sources/opcua/server-deadband.js';
import type { Change } from '../../../../protocols/opcua/changes.js';

const ROLES: NodeRole[] = ['workOrder', 'state', 'goodCount', 'scrapCount'];

/** One line, items `0:<role>`; good and scrap filtered on the server. */
function view(state: LineState, filtered: Array<'goodCount' | 'scrapCount'> = ['goodCount', 'scrapCount']): ReadBackView {
  return {
    itemOf: (item) => {
      const [line, role] = item.split(':') as [string, NodeRole];
      return line === '0' && ROLES.includes(role) ? { line: 0, role } : undefined;
    },
    stateOf: () => state,
    filteredCounters: () => filtered.map((role) => ({ item: `0:${role}`, role })),
  };
}

const change = (role: NodeRole, value: unknown, ts: number, statusGood = true): Change => ({ item: `0:${role}`, value, sourceTimestampMs: ts, statusGood, status: statusGood ? 'Good' : 'BadCommunicationError' });

/** A line running a work order; good seen at 6 (baseline 6, ts 100), scrap 0 (ts 50). */
function running(): LineState {
  return {
    ...initialLineState(),
    workOrder: 'WO-1',
    lifecycle: 'running',
    good: 6,
    baseline: { good: 6, scrap: 0 },
    nodes: { workOrder: { value: 'WO-1', ts: 10 }, state: { value: 'Running', ts: 20 }, goodCount: { value: 6, ts: 100 }, scrapCount: { value: 0, ts: 50 } },
  };
}

describe('server deadband read-back', () => {
  it('tracks what the server sent last per filtered item, in arrival order, and forgets it on a bad value or a new generation', () => {
    const refs = new ServerReferences();
    refs.reset(['0:goodCount']);
    expect(refs.receive([change('goodCount', 3, 1), change('state', 'Running', 2), change('goodCount', 6, 3)]).reference).toEqual([undefined, undefined, 3]);
    expect(refs.receive([change('goodCount', 9, 4)]).reference).toEqual([6]);
    expect(refs.receive([change('goodCount', null, 5, false), change('goodCount', 12, 6)]).reference).toEqual([9, undefined]);
    refs.reset(['0:goodCount']);
    expect(refs.receive([change('goodCount', 15, 7)]).reference).toEqual([undefined]);
  });

  it('applies a counter change as it is when the server started from our baseline and nothing else moved, except the other counter a report carries', () => {
    const refs = new ServerReferences();
    refs.reset(['0:goodCount', '0:scrapCount']);
    refs.receive([change('goodCount', 6, 100)]);
    const batch = refs.receive([change('goodCount', 9, 110)]);
    expect([...countersToReadBack(batch, view(running()))]).toEqual(['0:scrapCount']);
    expect([...countersToReadBack(batch, view(running(), ['goodCount']))]).toEqual([]);
  });

  it('reads a counter back when the server started from another value than our baseline (after a resubscription or a new work order)', () => {
    const refs = new ServerReferences();
    refs.reset(['0:goodCount']);
    const initial = refs.receive([change('goodCount', 7, 105)]); // the initial value of a new subscription
    const batch = refs.receive([change('goodCount', 10, 110)]);
    expect([...countersToReadBack(initial, view(running(), ['goodCount']))]).toEqual(['0:goodCount']); // unknown reference
    expect([...countersToReadBack(batch, view(running(), ['goodCount']))]).toEqual(['0:goodCount']); // 7, not 6
  });

  it('reads every filtered counter back before a state change, and ignores what is not newer than last seen or not good', () => {
    const refs = new ServerReferences();
    refs.reset(['0:goodCount', '0:scrapCount']);
    const state = running();
    expect([...countersToReadBack(refs.receive([change('state', 'Completed', 120)]), view(state))].sort()).toEqual(['0:goodCount', '0:scrapCount']);
    expect([...countersToReadBack(refs.receive([change('state', 'Completed', 20)]), view(state))]).toEqual([]); // already seen
    expect([...countersToReadBack(refs.receive([change('state', 'Completed', 130, false)]), view(state))]).toEqual([]);
    expect([...countersToReadBack(refs.receive([change('workOrder', 'WO-2', 130)]), view(state))]).toEqual([]); // nothing to carry counts yet
    expect([...countersToReadBack(refs.receive([change('state', 'Held', 140)]), view(state, []))]).toEqual([]); // no server filter on this line
  });
});
