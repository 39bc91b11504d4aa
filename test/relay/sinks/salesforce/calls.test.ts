// relay/sinks/salesforce/calls.ts: packing a batch's record writes into sObject Collections calls.
import { describe, expect, it } from 'vitest';
import { planCalls, type CollectionCall, type RecordWrite } from '../../../../relay/sinks/salesforce/index.js';

const write = (object: string, externalId: string, field = 'Key__c'): RecordWrite => ({ object, externalIdField: field, externalId, body: { Name__c: externalId } });

/** Each round as "Object:id,id" per call. */
const shape = (rounds: CollectionCall[][]): string[][] => rounds.map((calls) => calls.map((c) => `${c.object}:${c.records.map((r) => r.externalId).join(',')}`));

describe('planCalls', () => {
  it('groups records by object and external id field, in batch order, in calls of at most maxRecordsPerCall', () => {
    const items = ['a', 'b', 'c', 'd', 'e'].map((id) => ({ subject: id, writes: [write('A__c', id)] }));
    items.push({ subject: 'x', writes: [write('A__c', 'x', 'Other__c')] });
    expect(shape(planCalls(items, 2))).toEqual([['A__c:a,b', 'A__c:c,d', 'A__c:e', 'A__c:x']]);
    expect(planCalls(items, 2)[0]![3]!.externalIdField).toBe('Other__c');
  });

  it("puts an item's writes in successive rounds, in mapping order, and records where each came from", () => {
    const rounds = planCalls(
      [
        { subject: 's1', writes: [write('A__c', 'e1'), write('B__c', 'k1')] },
        { subject: 's2', writes: [write('A__c', 'e2')] },
      ],
      200,
    );
    expect(shape(rounds)).toEqual([['A__c:e1,e2'], ['B__c:k1']]);
    expect(rounds[1]![0]!.records[0]).toMatchObject({ item: 0, write: 1 });
    expect(rounds[0]![0]!.records[1]).toMatchObject({ item: 1, write: 0 });
  });

  it('applies the items of one subject one after another', () => {
    const rounds = planCalls(
      [
        { subject: 's1', writes: [write('A__c', 'e1'), write('B__c', 'k1')] },
        { subject: 's1', writes: [write('A__c', 'e2'), write('B__c', 'k1')] },
        { subject: 's2', writes: [write('A__c', 'e3'), write('B__c', 'k2')] },
      ],
      200,
    );
    expect(shape(rounds)).toEqual([['A__c:e1,e3'], ['B__c:k1,k2'], ['A__c:e2'], ['B__c:k1']]);
  });

  it('never puts one external id twice in a call, comparing case-insensitively; later ones go in later rounds, in order', () => {
    const rounds = planCalls(
      [
        { subject: 's1', writes: [write('A__c', 'K')] },
        { subject: 's2', writes: [write('A__c', 'k')] },
        { subject: 's3', writes: [write('A__c', 'other')] },
        { subject: 's4', writes: [write('A__c', 'K')] },
      ],
      200,
    );
    expect(shape(rounds)).toEqual([['A__c:K,other'], ['A__c:k'], ['A__c:K']]);
  });

  it('leaves out items without writes and returns no rounds for none', () => {
    expect(planCalls([{ subject: 's', writes: undefined }, { subject: 't', writes: [] }], 200)).toEqual([]);
  });
});
