import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_TOKEN, HubSpotEmulator, type HubSpotEmulatorOptions, type UpsertEvent } from './hubspot-emulator.js';
import { RateLimits } from './rate-limits.js';

const running: HubSpotEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function start(options?: HubSpotEmulatorOptions): Promise<HubSpotEmulator> {
  const emulator = await HubSpotEmulator.start(options);
  running.push(emulator);
  return emulator;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(emulator: HubSpotEmulator, path: string, init: { method?: string; body?: unknown; token?: string | null; contentType?: string } = {}): Promise<Answer> {
  const token = init.token === undefined ? DEFAULT_TOKEN : init.token;
  const res = await fetch(`${emulator.url}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(token === null ? {} : { Authorization: `Bearer ${token}` }),
      ...(init.body === undefined ? {} : { 'Content-Type': init.contentType ?? 'application/json' }),
    },
    ...(init.body === undefined ? {} : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
}

type Input = { id: string; idProperty?: string; properties?: Record<string, unknown>; objectWriteTraceId?: string };

function upsert(emulator: HubSpotEmulator, objectType: string, inputs: Input[], token?: string | null): Promise<Answer> {
  return call(emulator, `/crm/v3/objects/${objectType}/batch/upsert`, { body: { inputs }, token });
}

const workOrder = (id: string, properties: Record<string, unknown>, trace?: string): Input => ({
  id,
  idProperty: 'plantlink_work_order',
  properties,
  ...(trace === undefined ? {} : { objectWriteTraceId: trace }),
});

describe('HubSpotEmulator: private app tokens', () => {
  it('answers 401 INVALID_AUTHENTICATION without a token, with an unknown token and after revokeToken()', async () => {
    const emulator = await start({ tokens: [DEFAULT_TOKEN, 'pat-other'] });
    const inputs = [workOrder('WO-1', { plantlink_status: 'started' })];
    const missing = await upsert(emulator, 'p_plantlink_work_orders', inputs, null);
    expect(missing.status).toBe(401);
    expect(missing.body).toMatchObject({ status: 'error', category: 'INVALID_AUTHENTICATION' });
    expect(String(missing.body.message)).toMatch(/^Authentication credentials not found/);
    expect(missing.headers.get('x-hubspot-auth-failure')).toBe('401 Unauthorized');
    expect((await upsert(emulator, 'p_plantlink_work_orders', inputs, 'pat-unknown')).status).toBe(401);

    expect((await upsert(emulator, 'p_plantlink_work_orders', inputs, 'pat-other')).status).toBe(200);
    emulator.revokeToken('pat-other');
    expect((await upsert(emulator, 'p_plantlink_work_orders', inputs, 'pat-other')).status).toBe(401);
    expect((await upsert(emulator, 'p_plantlink_work_orders', inputs)).status).toBe(200);
    expect(emulator.record('p_plantlink_work_orders', 'plantlink_work_order', 'WO-1')!.writes).toBe(2);
  });
});

describe('HubSpotEmulator: batch upsert by a unique property', () => {
  it('creates (new: true), updates (new: false) and counts unchanged rewrites; values are stored as HubSpot strings', async () => {
    const emulator = await start();
    const events: UpsertEvent[] = [];
    emulator.on('upsert', (e) => events.push(e));
    const first = await upsert(emulator, 'p_plantlink_work_orders', [
      workOrder('WO-1', { plantlink_status: 'started', plantlink_good_quantity: 10, plantlink_last_milestone_at: '2024-05-01T10:00:00+02:00' }, 't1'),
    ]);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ status: 'COMPLETE', results: [{ new: true, archived: false, objectWriteTraceId: 't1' }] });
    const result = (first.body.results as { id: string; properties: Record<string, string> }[])[0]!;
    expect(result.id).toMatch(/^\d+$/);
    expect(result.properties).toMatchObject({
      plantlink_work_order: 'WO-1',
      plantlink_good_quantity: '10',
      plantlink_last_milestone_at: '2024-05-01T08:00:00.000Z',
      hs_object_id: result.id,
    });
    expect(first.headers.get('x-hubspot-ratelimit-max')).toBe('190');
    expect(first.headers.get('x-hubspot-ratelimit-remaining')).toBe('189');
    expect(first.headers.get('x-hubspot-ratelimit-interval-milliseconds')).toBe('10000');
    expect(first.headers.get('x-hubspot-ratelimit-daily-remaining')).toBe('999999');

    const second = await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', { plantlink_status: 'completed', plantlink_good_quantity: '10.0' })]);
    expect(second.body).toMatchObject({ results: [{ id: result.id, new: false }] });
    // The same instant and number in other forms: written, nothing changed.
    await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', { plantlink_last_milestone_at: String(Date.parse('2024-05-01T08:00:00Z')), plantlink_good_quantity: 1e1 })]);

    expect(emulator.record('p_plantlink_work_orders', 'plantlink_work_order', 'WO-1')).toMatchObject({ id: result.id, writes: 3, changes: 2 });
    expect(emulator.stats()).toMatchObject({ batchCalls: 3, upserts: 3, created: 1, updated: 1, unchanged: 1, rejected: 0 });
    expect(events.map((e) => [e.created, e.changed])).toEqual([
      [true, true],
      [false, true],
      [false, false],
    ]);
  });

  it('keeps properties an upsert leaves out and clears a property set to an empty string', async () => {
    const emulator = await start();
    await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO/7', { plantlink_status: 'started', plantlink_product: 'P-1', plantlink_plant: 'P1' })]);
    await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO/7', { plantlink_status: 'held', plantlink_product: '' })]);
    expect(emulator.record('p_plantlink_work_orders', 'plantlink_work_order', 'WO/7')!.properties).toEqual({
      plantlink_work_order: 'WO/7',
      plantlink_status: 'held',
      plantlink_plant: 'P1',
    });
    const read = await call(emulator, '/crm/v3/objects/p_plantlink_work_orders/WO%2F7?idProperty=plantlink_work_order');
    expect(read).toMatchObject({ status: 200, body: { properties: { plantlink_status: 'held' } } });
    expect((await call(emulator, '/crm/v3/objects/p_plantlink_work_orders/WO-404?idProperty=plantlink_work_order')).status).toBe(404);
    expect((await call(emulator, '/crm/v3/objects/2-1002?limit=1')).body).toMatchObject({ results: [{ properties: { plantlink_work_order: 'WO/7' } }] });
  });

  it('answers 207 when some inputs are invalid: the valid ones are written, each invalid one listed with its trace id', async () => {
    const emulator = await start();
    const answer = await upsert(emulator, 'p_plantlink_work_orders', [
      workOrder('WO-1', { plantlink_status: 'started' }, 'a'),
      workOrder('WO-2', { plantlink_status: 'paused', plantlink_colour: 'red' }, 'b'),
      workOrder('WO-3', { plantlink_status: 'held', plantlink_good_quantity: 'many' }, 'c'),
      workOrder('WO-4', { plantlink_status: 'completed' }, 'd'),
    ]);
    expect(answer.status).toBe(207);
    expect(answer.body).toMatchObject({ status: 'COMPLETE', numErrors: 2 });
    expect((answer.body.results as { objectWriteTraceId: string }[]).map((r) => r.objectWriteTraceId)).toEqual(['a', 'd']);
    const [wo2, wo3] = answer.body.errors as { category: string; message: string; context: unknown; errors: unknown[] }[];
    expect(wo2).toMatchObject({ status: 'error', category: 'VALIDATION_ERROR', context: { objectWriteTraceId: ['b'] } });
    expect(wo2!.message).toMatch(/^Property values were not valid: \[/);
    expect(JSON.parse(wo2!.message.replace('Property values were not valid: ', ''))).toEqual([
      {
        isValid: false,
        message: 'paused was not one of the allowed options: [released, started, quantity-reported, completed, held, resumed]',
        error: 'INVALID_OPTION',
        name: 'plantlink_status',
      },
      { isValid: false, message: 'Property "plantlink_colour" does not exist', error: 'PROPERTY_DOESNT_EXIST', name: 'plantlink_colour' },
    ]);
    expect(wo2!.errors).toEqual([
      { message: expect.stringContaining('paused was not one of'), code: 'INVALID_OPTION', context: { propertyName: ['plantlink_status'] } },
      { message: 'Property "plantlink_colour" does not exist', code: 'PROPERTY_DOESNT_EXIST', context: { propertyName: ['plantlink_colour'] } },
    ]);
    expect(wo3).toMatchObject({ context: { objectWriteTraceId: ['c'] }, errors: [{ code: 'INVALID_DECIMAL' }] });
    expect(emulator.records('p_plantlink_work_orders').map((r) => r.properties.plantlink_work_order).sort()).toEqual(['WO-1', 'WO-4']);
    expect(emulator.stats()).toMatchObject({ created: 2, rejected: 2 });
  });

  it('without a unique trace id per input, one invalid input fails the whole call with 400 and nothing is written', async () => {
    const emulator = await start();
    const answer = await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', { plantlink_status: 'started' }), workOrder('WO-2', { plantlink_status: 'paused' })]);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ status: 'error', category: 'VALIDATION_ERROR', errors: [{ code: 'INVALID_OPTION', context: { propertyName: ['plantlink_status'] } }] });
    expect(String(answer.body.message)).toMatch(/^Property values were not valid: /);
    expect(emulator.records('p_plantlink_work_orders')).toEqual([]);

    const always = await start({ partialSuccess: 'always' });
    const partial = await upsert(always, 'p_plantlink_work_orders', [workOrder('WO-1', { plantlink_status: 'started' }), workOrder('WO-2', { plantlink_status: 'paused' })]);
    expect(partial).toMatchObject({ status: 207, body: { numErrors: 1, errors: [{ context: { ids: ['WO-2'] } }] } });

    const never = await start({ partialSuccess: 'never' });
    const refused = await upsert(never, 'p_plantlink_work_orders', [workOrder('WO-1', { plantlink_status: 'started' }, 'a'), workOrder('WO-2', { plantlink_status: 'paused' }, 'b')]);
    expect(refused.status).toBe(400);
    expect(never.records('p_plantlink_work_orders')).toEqual([]);
  });

  it('refuses whole calls: more than 100 inputs, duplicate ids, a non-unique idProperty, an unknown object type, a non-JSON body', async () => {
    const emulator = await start();
    const many = Array.from({ length: 101 }, (_, i) => workOrder(`WO-${i}`, {}));
    const tooMany = await upsert(emulator, 'p_plantlink_work_orders', many);
    expect(tooMany).toMatchObject({ status: 400, body: { category: 'VALIDATION_ERROR' } });
    expect(String(tooMany.body.message)).toContain('maximum number of inputs supported in a batch request is 100');
    expect((await upsert(emulator, 'p_plantlink_work_orders', many.slice(0, 100))).status).toBe(200);

    const duplicate = await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-X', {}, 'a'), workOrder('WO-X', {}, 'b')]);
    expect(duplicate).toMatchObject({
      status: 400,
      body: { category: 'VALIDATION_ERROR', message: 'Duplicate IDs found in batch input: [WO-X]. IDs must be unique', context: { ids: ['WO-X'] } },
    });

    const nonUnique = await upsert(emulator, 'p_plantlink_work_orders', [{ id: 'P1', idProperty: 'plantlink_plant', properties: {} }]);
    expect(nonUnique).toMatchObject({
      status: 400,
      body: { category: 'VALIDATION_ERROR', message: `Unable to perform update/upsert by non-unique 2-1002 property plantlink_plant in portal ID ${emulator.portalId}` },
    });

    const unknown = await upsert(emulator, 'butterflies', [workOrder('WO-1', {})]);
    expect(unknown).toMatchObject({ status: 400, body: { status: 'error', message: 'Unable to infer object type from: butterflies' } });

    const form = await call(emulator, '/crm/v3/objects/deals/batch/upsert', { body: 'inputs=1', contentType: 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    const broken = await call(emulator, '/crm/v3/objects/deals/batch/upsert', { body: '{"inputs": [' });
    expect(broken).toMatchObject({ status: 400, body: { category: 'VALIDATION_ERROR' } });
    expect(emulator.records('p_plantlink_work_orders')).toHaveLength(100);
  });

  it('addresses an object by name, objectTypeId or fully qualified name, and enforces other unique properties', async () => {
    const emulator = await start({
      objects: {
        p_machines: {
          objectTypeId: '2-77',
          properties: { serial: { type: 'string', hasUniqueValue: true }, asset_tag: { type: 'string', hasUniqueValue: true }, running: { type: 'bool' } },
        },
      },
    });
    const machine = (id: string, properties: Record<string, unknown>, trace: string): Input => ({ id, idProperty: 'serial', properties, objectWriteTraceId: trace });
    expect((await upsert(emulator, 'p_machines', [machine('S-1', { asset_tag: 'A-1', running: true }, 'a')])).status).toBe(200);
    expect((await upsert(emulator, '2-77', [machine('S-1', { asset_tag: 'A-1' }, 'a')])).status).toBe(200);
    const taken = await upsert(emulator, `p${emulator.portalId}_machines`, [machine('S-2', { asset_tag: 'A-1', running: 'yes' }, 'b')]);
    expect(taken).toMatchObject({ status: 207, body: { errors: [{ errors: [{ code: 'INVALID_BOOLEAN' }, { code: 'DUPLICATE_UNIQUE_VALUE' }] }] } });
    expect(emulator.record('2-77', 'asset_tag', 'A-1')).toMatchObject({ writes: 2, properties: { serial: 'S-1', running: 'true' } });
  });

  it('validation rules run on the merged record and reject only their input', async () => {
    const emulator = await start();
    emulator.addValidationRule('p_plantlink_work_orders', {
      property: 'plantlink_sales_order',
      test: (value) => value !== 'SO-CLOSED',
      message: 'Sales order SO-CLOSED is closed',
    });
    await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', { plantlink_sales_order: 'SO-CLOSED' }, 'a'), workOrder('WO-2', { plantlink_sales_order: 'SO-1' }, 'b')]);
    expect(emulator.records('p_plantlink_work_orders').map((r) => r.properties.plantlink_work_order)).toEqual(['WO-2']);
    emulator.clearValidationRules();
    expect((await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', { plantlink_sales_order: 'SO-CLOSED' }, 'a')])).status).toBe(200);
  });
});

describe('HubSpotEmulator: rate limits', () => {
  it('answers 429 TEN_SECONDLY_ROLLING with Retry-After and rate headers once a token used its window; other tokens are not affected', async () => {
    const emulator = await start({ tokens: [DEFAULT_TOKEN, 'pat-b'], rateLimit: { max: 2, intervalMs: 60_000 } });
    const inputs = [workOrder('WO-1', {})];
    expect((await upsert(emulator, 'p_plantlink_work_orders', inputs)).headers.get('x-hubspot-ratelimit-remaining')).toBe('1');
    expect((await upsert(emulator, 'p_plantlink_work_orders', inputs)).status).toBe(200);
    const limited = await upsert(emulator, 'p_plantlink_work_orders', inputs);
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ status: 'error', errorType: 'RATE_LIMIT', policyName: 'TEN_SECONDLY_ROLLING', message: 'You have reached your ten_secondly_rolling limit.' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(limited.headers.get('x-hubspot-ratelimit-remaining')).toBe('0');
    expect((await upsert(emulator, 'p_plantlink_work_orders', inputs, 'pat-b')).status).toBe(200);
    expect(emulator.stats()).toMatchObject({ rateLimited: 1, upserts: 3 });

    emulator.resetRateLimits();
    expect((await upsert(emulator, 'p_plantlink_work_orders', inputs)).status).toBe(200);
  });

  it('answers 429 DAILY once the portal used its daily limit, and can leave out Retry-After', async () => {
    const emulator = await start({ dailyLimit: 1, retryAfter: false });
    expect((await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', {})])).headers.get('x-hubspot-ratelimit-daily')).toBe('1');
    const limited = await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', {})]);
    expect(limited).toMatchObject({ status: 429, body: { policyName: 'DAILY', message: 'You have reached your daily limit.' } });
    expect(limited.headers.get('retry-after')).toBeNull();
  });

  it('the window rolls: an admission leaves it intervalMs after it was made (simulated clock)', () => {
    let now = 1_000;
    const limits = new RateLimits({ max: 2, intervalMs: 10_000 }, 100, () => now);
    expect(limits.admit('t')).toEqual({ admitted: true });
    now = 4_000;
    expect(limits.admit('t')).toEqual({ admitted: true });
    expect(limits.admit('t')).toEqual({ admitted: false, policy: 'TEN_SECONDLY_ROLLING', retryAfterMs: 7_000 });
    now = 11_000;
    expect(limits.admit('t')).toEqual({ admitted: true });
    expect(limits.headers('t')['X-HubSpot-RateLimit-Remaining']).toBe('0');
    expect(limits.headers('t')['X-HubSpot-RateLimit-Daily-Remaining']).toBe('97');
  });
});

describe('HubSpotEmulator: fault injection and control plane', () => {
  it('failNext answers the next requests with the given status, body and headers; then normal service resumes', async () => {
    const emulator = await start();
    emulator.failNext(2, { status: 503, headers: { 'Retry-After': '3' } });
    const first = await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', {})]);
    expect(first.status).toBe(503);
    expect(first.headers.get('retry-after')).toBe('3');
    expect((await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', {})])).status).toBe(503);
    expect((await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', {})])).status).toBe(200);
    expect(emulator.stats().status).toMatchObject({ 503: 2, 200: 1 });
  });

  it('an outage closes connections without an answer; the control routes keep working over HTTP', async () => {
    const emulator = await start();
    const control = (body: unknown): Promise<Response> => fetch(`${emulator.url}/__emulator/faults`, { method: 'POST', body: JSON.stringify(body) });
    expect((await control({ outage: true })).status).toBe(204);
    await expect(upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', {})])).rejects.toThrow();
    await control({ outage: false, failNext: { n: 1, status: 500 } });
    expect((await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', {})])).status).toBe(500);
    expect((await upsert(emulator, 'p_plantlink_work_orders', [workOrder('WO-1', { plantlink_plant: 'P1' })])).status).toBe(200);
    const records = (await (await fetch(`${emulator.url}/__emulator/records?objectType=p_plantlink_work_orders`)).json()) as { properties: Record<string, string> }[];
    expect(records.map((r) => r.properties)).toEqual([{ plantlink_work_order: 'WO-1', plantlink_plant: 'P1' }]);
    const stats = (await (await fetch(`${emulator.url}/__emulator/stats`)).json()) as { requests: number };
    expect(stats.requests).toBe(3);
  });
});
