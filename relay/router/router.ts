/**
 * Routing is data: an ordered list of rules, each a match on event attributes and the
 * sinks it sends to. An event goes to the union of the sinks of every rule it matches.
 * An event that matches no rule is still stored (and logged), but routed nowhere.
 * A route's mapping is its sink's: to map the same events differently for different
 * plants or regions, declare two sink entries (e.g. `crm-emea`, `crm-us`) with their own
 * mappings and route to each.
 */
import { z } from 'zod';
import type { CloudEventV1 } from '../../protocols/events/envelope.js';
import { FieldPath, resolvePath } from '../sinks/mapping.js';

const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const RouteConfig = z
  .object({
    name: z.string().min(1).optional().describe('Name shown in logs.'),
    match: z
      .object({
        type: stringOrList.optional().describe('CloudEvents type(s), e.g. com.plantlink.production.milestone.v1.'),
        plant: stringOrList.optional().describe('Plant id(s).'),
        attributes: z
          .record(FieldPath, z.union([z.string(), z.number(), z.boolean(), z.array(z.union([z.string(), z.number(), z.boolean()])).min(1)]))
          .optional()
          .describe('Any event attribute by path, e.g. `data.salesOrder`, `region`, `data.currency`: the value, or one of a list of values.'),
      })
      .strict()
      .default({})
      .describe('All given attributes must match; an empty match takes every event.'),
    sinks: z.array(z.string().min(1)).min(1).describe('Names of the sinks that receive matching events.'),
  })
  .strict();
export type RouteConfig = z.infer<typeof RouteConfig>;

const asList = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

export class Router {
  private readonly rules: { types?: Set<string>; plants?: Set<string>; attributes: [string, Set<unknown>][]; sinks: string[] }[];

  constructor(routes: readonly RouteConfig[]) {
    this.rules = routes.map((r) => {
      const types = asList(r.match.type);
      const plants = asList(r.match.plant);
      const attributes = Object.entries(r.match.attributes ?? {}).map(([path, v]): [string, Set<unknown>] => [path, new Set(Array.isArray(v) ? v : [v])]);
      return { ...(types ? { types: new Set(types) } : {}), ...(plants ? { plants: new Set(plants) } : {}), attributes, sinks: r.sinks };
    });
  }

  route(event: CloudEventV1): string[] {
    const out = new Set<string>();
    for (const rule of this.rules) {
      if (rule.types && !rule.types.has(event.type)) continue;
      if (rule.plants && !rule.plants.has(event.plant)) continue;
      if (!rule.attributes.every(([path, values]) => values.has(resolvePath(event, path)))) continue;
      for (const s of rule.sinks) out.add(s);
    }
    return [...out];
  }
}
