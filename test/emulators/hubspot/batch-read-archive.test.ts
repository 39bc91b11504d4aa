// The emulator's batch read, batch archive and tamper routes, over real HTTP.
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_TOKEN, HubSpotEmulator } from './hubspot-emulator.js';

const running: HubSpotEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

const WO = 'p_plantlink_work_orders';

async function start(): Promise<{ emulator: HubSpotEmulator; post: (path: string, body: unknown) => Promise<{ status: number; body: any }> }> {
  const emulator = await HubSpotEmulator.start();
  running.push(emulator);
  // `any`: answers are checked field by field in each test.
  const post = async (path: string, body: unknown): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${emulator.url}/crm/v3/objects/${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${DEFAULT_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const seeded = await post(`${WO}/batch/upsert`, {
    inputs: ['WO-1', 'WO-2'].map((wo, i) => ({ id: wo, idProperty: 'plantlink_work_order', objectWriteTraceId: String(i), properties: { plantlink_status: 'started' } })),
  });
  expect(seeded.status).toBe(200);
  return { emulator, post };
}

describe('HubSpot emulator: batch read', () => {
  it('reads by a unique property: requested properties (null when unset), and a 207 listing values not found', async () => {
    const { post } = await start();
    const answer = await post(`${WO}/batch/read`, { idProperty: 'plantlink_work_order', inputs: [{ id: 'WO-1' }, { id: 'WO-9' }], properties: ['plantlink_status', 'plantlink_product', 'plantlink_work_order'] });
    expect(answer.status).toBe(207);
    expect(answer.body.results).toEqual([
      {
        id: expect.any(String),
        properties: expect.objectContaining({ plantlink_status: 'started', plantlink_product: null, plantlink_work_order: 'WO-1', hs_object_id: expect.any(String) }),
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
        archived: false,
      },
    ]);
    expect(answer.body).toMatchObject({ status: 'COMPLETE', numErrors: 1 });
    expect(answer.body.errors).toEqual([
      { status: 'error', category: 'OBJECT_NOT_FOUND', message: expect.stringContaining('they may be deleted or not exist'), context: { ids: ['WO-9'] } },
    ]);
    const all = await post(`${WO}/batch/read`, { idProperty: 'plantlink_work_order', inputs: [{ id: 'WO-1' }, { id: 'WO-2' }], properties: [] });
    expect(all.status).toBe(200);
    expect(all.body.results).toHaveLength(2);
  });

  it('reads by record id without idProperty, and refuses more than 100 inputs', async () => {
    const { emulator, post } = await start();
    const id = emulator.record(WO, 'plantlink_work_order', 'WO-2')!.id;
    const answer = await post(`${WO}/batch/read`, { inputs: [{ id }], properties: ['plantlink_work_order'] });
    expect(answer.status).toBe(200);
    expect(answer.body.results[0].properties.plantlink_work_order).toBe('WO-2');
    const tooMany = await post(`${WO}/batch/read`, { idProperty: 'plantlink_work_order', inputs: Array.from({ length: 101 }, (_, i) => ({ id: `WO-${i}` })) });
    expect([tooMany.status, tooMany.body.category]).toEqual([400, 'VALIDATION_ERROR']);
  });
});

describe('HubSpot emulator: batch archive and tamper', () => {
  it('archives by record id with 204, freeing the unique value for a new record', async () => {
    const { emulator, post } = await start();
    const id = emulator.record(WO, 'plantlink_work_order', 'WO-1')!.id;
    const archived = await post(`${WO}/batch/archive`, { inputs: [{ id }, { id: '999' }] });
    expect([archived.status, archived.body]).toEqual([204, undefined]);
    expect(emulator.record(WO, 'plantlink_work_order', 'WO-1')).toBeUndefined();
    await post(`${WO}/batch/upsert`, { inputs: [{ id: 'WO-1', idProperty: 'plantlink_work_order', properties: {} }] });
    expect(emulator.record(WO, 'plantlink_work_order', 'WO-1')!.id).not.toBe(id);
  });

  it('changes and deletes records for another process over /__emulator/tamper', async () => {
    const { emulator } = await start();
    const tamper = (body: unknown): Promise<Response> => fetch(`${emulator.url}/__emulator/tamper`, { method: 'POST', body: JSON.stringify(body) });
    expect((await tamper({ setProperties: { objectType: WO, property: 'plantlink_work_order', value: 'WO-2', properties: { plantlink_status: 'held' } } })).status).toBe(204);
    expect(emulator.record(WO, 'plantlink_work_order', 'WO-2')!.properties.plantlink_status).toBe('held');
    expect((await tamper({ deleteRecord: { objectType: WO, property: 'plantlink_work_order', value: 'WO-1' } })).status).toBe(204);
    expect(emulator.records(WO).map((r) => r.properties.plantlink_work_order)).toEqual(['WO-2']);
    expect((await tamper({ deleteRecord: { objectType: WO, property: 'plantlink_work_order', value: 'WO-1' } })).status).toBe(404);
  });
});
