/**
 * Routing is data: an ordered list of rules, each a match on event attributes and the
 * sinks it sends to. An event goes to the union of the sinks of every rule it matches.
 * An event that matches no rule is still stored (and logged), but routed nowhere.
 *
 * A route sends to a sink with the sink's own mappings (`sinks: [crm]`), or with mappings of
 * its own (`sinks: [{ sink: crm, mappings: [...] }]`). A route's own mappings make a
 * delivery lane named `<sink>:<route>`: its own queue, order per subject and dead letters,
 * but the sink's connection settings and the SAME request pacing as the sink, so two
 * routes into one CRM never double the calls the CRM sees. See `lanes.ts`.
 */
import { z } from 'zod';
import type { CloudEventV1 } from '../../protocols/events/envelope.js';
import { FieldPath, resolvePath } from '../sinks/mapping.js';

const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const RouteConfig = z
  .object({
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
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/)
      .optional()
      .describe('Name shown in logs; required when a target carries its own mappings (it names the delivery lane `<sink>:<name>`).'),
    sinks: z
      .array(
        z.union([
          z.string().min(1).describe('A sink name: matching events are written with that sink\'s own mappings.'),
          z
            .object({
              sink: z.string().min(1).describe('The sink to write to (its connection, credentials and request pacing).'),
              mappings: z
                .array(z.unknown())
                .min(1)
                .describe('Mappings for this route instead of the sink\'s: same format as the sink kind\'s `mappings`, checked against it when the config loads.'),
            })
            .strict(),
        ]),
      )
      .min(1)
      .describe('Where matching events go: sink names, or `{ sink, mappings }` to write with this route\'s own mappings.'),
  })
  .strict();
export type RouteConfig = z.infer<typeof RouteConfig>;
export type RouteTarget = RouteConfig['sinks'][number];

/** The delivery lane a route target delivers through: the sink itself, or `<sink>:<route>` when the route brings its own mappings. */
export function laneOf(route: Pick<RouteConfig, 'name'>, target: RouteTarget): string {
  return typeof target === 'string' ? target : `${target.sink}:${route.name ?? '?'}`;
}

const asList = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

export class Router {
  private readonly rules: { types?: Set<string>; plants?: Set<string>; attributes: [string, Set<unknown>][]; sinks: string[] }[];

  constructor(routes: readonly RouteConfig[]) {
    this.rules = routes.map((r) => {
      const types = asList(r.match.type);
      const plants = asList(r.match.plant);
      const attributes = Object.entries(r.match.attributes ?? {}).map(([path, v]): [string, Set<unknown>] => [path, new Set(Array.isArray(v) ? v : [v])]);
      return { ...(types ? { types: new Set(types) } : {}), ...(plants ? { plants: new Set(plants) } : {}), attributes, sinks: r.sinks.map((t) => laneOf(r, t)) };
    });
  }

  /** The delivery lanes (sink names, or `<sink>:<route>`) the event goes to. */
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
