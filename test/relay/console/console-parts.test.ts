import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashToken } from '../../../relay/ingress/agent-auth.js';
import { ReplayAudit } from '../../../relay/console/audit.js';
import { CONSOLE_DEFAULTS } from '../../../relay/console/config.js';
import { causeOf, group, impactOf, type DeadLetterItem } from '../../../relay/console/dead-letters.js';
import { Sessions } from '../../../relay/console/sessions.js';
import { Throughput } from '../../../relay/console/throughput.js';
import { tempDir } from '../../helpers/temp.js';

const tokens = [
  { name: 'olga', role: 'operator' as const, tokenHash: hashToken('t-olga') },
  { name: 'vic', role: 'viewer' as const, tokenHash: hashToken('t-vic') },
];

describe('console sessions', () => {
  it('logs in only with a matching name and token, gives the role, and ends the session at its TTL', () => {
    let now = 1_000_000;
    const s = new Sessions(tokens, { ...CONSOLE_DEFAULTS, sessionTtlMinutes: 10 }, () => now);
    expect(s.login('a', 'olga', 't-vic')).toEqual({ ok: false, reason: 'refused' });
    expect(s.login('a', 'vic', '')).toEqual({ ok: false, reason: 'refused' });
    const ok = s.login('a', 'vic', 't-vic');
    if (!ok.ok) throw new Error('login refused');
    expect(ok.session).toMatchObject({ name: 'vic', role: 'viewer' });
    expect(ok.session.id).not.toBe(ok.session.csrf);
    expect(s.get(ok.session.id)?.name).toBe('vic');
    now += 10 * 60_000;
    expect(s.get(ok.session.id)).toBeUndefined();
  });

  it('refuses an address after too many failures within the window, even with the right token, and not other addresses', () => {
    let now = 0;
    const s = new Sessions(tokens, { ...CONSOLE_DEFAULTS, maxFailedLogins: 2, failedLoginWindowMinutes: 1 }, () => now);
    s.login('a', 'olga', 'x');
    s.login('a', 'olga', 'y');
    expect(s.login('a', 'olga', 't-olga')).toMatchObject({ ok: false, reason: 'rate_limited' });
    expect(s.login('b', 'olga', 't-olga').ok).toBe(true);
    now += 60_000;
    expect(s.login('a', 'olga', 't-olga').ok).toBe(true);
  });
});

describe('dead-letter classification', () => {
  it.each([
    ['FIELD_CUSTOM_VALIDATION_EXCEPTION', 'validation'],
    ['REQUIRED_FIELD_MISSING', 'validation'],
    ['DUPLICATE_EXTERNAL_ID', 'validation'],
    ['http_400', 'validation'],
    ['mapping_error', 'mapping'],
    ['no_mapping', 'mapping'],
    ['INVALID_FIELD', 'mapping'],
    ['INVALID_SESSION_ID', 'auth'],
    ['INVALID_AUTHENTICATION', 'auth'],
    ['invalid_private_key', 'auth'],
    ['http_403', 'auth'],
    ['REQUEST_LIMIT_EXCEEDED', 'rate_limit'],
    ['http_429', 'rate_limit'],
    ['SOMETHING_ELSE', 'other'],
    [null, 'other'],
  ])('%s is %s', (code, cause) => expect(causeOf(code)).toBe(cause));

  it('groups by impact with distinct business keys and sales orders, and by cause with codes', () => {
    const item = (over: Partial<DeadLetterItem>): DeadLetterItem => ({
      sink: 'crm', seq: 1, id: 'e', type: 'com.plantlink.production.milestone.v1', plant: 'P1', subject: 'work-order/WO-1', businessKey: 'WO-1',
      salesOrder: 'SO-1', correlationId: 'c', code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', cause: 'validation', impact: 'orders_blocked', reason: 'r',
      attempts: 1, updatedMs: 0, payload: undefined, ...over,
    });
    const view = group([
      item({ seq: 1 }),
      item({ seq: 2 }),
      item({ seq: 3, businessKey: 'WO-2', salesOrder: undefined }),
      item({ seq: 4, type: 'com.plantlink.shipment.v1', impact: impactOf('com.plantlink.shipment.v1'), businessKey: 'SHP-1', code: 'INVALID_SESSION_ID', cause: 'auth' }),
    ]);
    expect(view.byImpact).toEqual([
      { impact: 'orders_blocked', label: 'Orders whose milestones are blocked', count: 3, businessKeys: ['WO-1', 'WO-2'], salesOrders: ['SO-1'] },
      { impact: 'shipments_not_reflected', label: 'Shipments not reflected', count: 1, businessKeys: ['SHP-1'], salesOrders: ['SO-1'] },
    ]);
    expect(view.byCause.map((c) => [c.cause, c.count, c.codes])).toEqual([
      ['validation', 3, ['FIELD_CUSTOM_VALIDATION_EXCEPTION']],
      ['auth', 1, ['INVALID_SESSION_ID']],
    ]);
  });
});

describe('throughput ring', () => {
  it('puts the growth of the totals into per-minute buckets and keeps the last 60 minutes', () => {
    let now = 10 * 60_000;
    const totals = { stored: 0, delivered: 0, deadLettered: 0 };
    const t = new Throughput(() => totals, () => now);
    totals.stored = 5;
    totals.delivered = 4;
    t.sample();
    now += 60_000;
    totals.stored = 7;
    const hour = t.lastHour();
    expect(hour).toHaveLength(60);
    expect(hour.at(-2)).toEqual({ minuteMs: 10 * 60_000, stored: 5, delivered: 4, deadLettered: 0 });
    expect(hour.at(-1)).toEqual({ minuteMs: 11 * 60_000, stored: 2, delivered: 0, deadLettered: 0 });
    now += 60 * 60_000;
    expect(t.lastHour().every((m) => m.stored === 0)).toBe(true);
  });
});

describe('replay audit', () => {
  let cleanup = () => {};
  afterEach(() => cleanup());
  it('keeps its rows in console.sqlite across reopening, newest first', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const a = new ReplayAudit(t.dir, () => 42);
    a.record({ by: 'olga', role: 'operator', request: { filter: { cause: 'validation' } }, matched: 2, replayed: 2 });
    a.record({ by: 'olga', role: 'operator', request: { items: [{ sink: 'crm', seq: 7 }] }, matched: 1, replayed: 0 });
    a.close();
    const b = new ReplayAudit(t.dir);
    expect(b.list()).toEqual([
      { id: 2, atMs: 42, by: 'olga', role: 'operator', request: { items: [{ sink: 'crm', seq: 7 }] }, matched: 1, replayed: 0 },
      { id: 1, atMs: 42, by: 'olga', role: 'operator', request: { filter: { cause: 'validation' } }, matched: 2, replayed: 2 },
    ]);
    b.close();
    expect(existsSync(join(t.dir, 'console.sqlite'))).toBe(true);
  });
});
