import { describe, expect, it } from 'vitest';
import { RouteConfig, Router } from '../../../relay/router/router.js';
import { milestoneEvent, shipmentEvent } from '../sinks/salesforce/fixtures.js';

const router = (routes: unknown[]) => new Router(routes.map((r) => RouteConfig.parse(r)));

describe('router', () => {
  it('fans out to the union of the sinks of every matching rule', () => {
    const r = router([
      { match: { type: 'com.plantlink.production.milestone.v1' }, sinks: ['crm'] },
      { match: { type: 'com.plantlink.shipment.v1' }, sinks: ['crm', 'erp'] },
      { match: {}, sinks: ['archive'] },
    ]);
    expect(r.route(milestoneEvent('WO-1', 'released', 1)).sort()).toEqual(['archive', 'crm']);
    expect(r.route(shipmentEvent('SH-1', 'shipped', 1)).sort()).toEqual(['archive', 'crm', 'erp']);
  });

  it('matches on plant and on any attribute by path, with one value or a list', () => {
    const r = router([
      { match: { plant: 'P1', attributes: { 'data.salesOrder': ['SO-100', 'SO-200'] } }, sinks: ['crm-emea'] },
      { match: { plant: 'P2' }, sinks: ['crm-us'] },
      { match: { attributes: { 'data.product': 'PUMP-7', 'data.milestone': 'completed' } }, sinks: ['erp'] },
    ]);
    expect(r.route(milestoneEvent('WO-1', 'released', 1))).toEqual(['crm-emea']);
    expect(r.route(milestoneEvent('WO-1', 'completed', 2)).sort()).toEqual(['crm-emea', 'erp']);
    expect(r.route(milestoneEvent('WO-2', 'released', 1, { salesOrder: 'SO-999' }))).toEqual([]);
  });

  it('rejects a malformed attribute path when the config loads', () => {
    expect(() => RouteConfig.parse({ match: { attributes: { 'data..x': 'a' } }, sinks: ['crm'] })).toThrow();
  });
});
