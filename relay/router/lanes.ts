/**
 * Delivery lanes: what the relay delivers through. Every configured sink is a lane; a route
 * target with its own mappings (`{ sink: crm, mappings: [...] }` in route `emea`) adds the
 * lane `crm:emea`, a copy of the sink's config with the route's mappings.
 *
 * Invariants:
 * - A lane has its own delivery queue, per-subject order, versions and dead letters (the
 *   inbox keys them by lane name), so one route's mapping error never blocks another's.
 * - A lane shares its sink's request pacing (`pacedBy`): the CRM sees one client, whatever
 *   the number of routes into it.
 * - The route's mappings are validated with the sink kind's own schema when the config
 *   loads; an error names `routes[i].sinks[j].mappings...`.
 */
import type { z } from 'zod';
import { laneOf, type RouteConfig } from './router.js';

export interface DeliveryLane<S extends { name: string }> {
  /** Lane name: the sink's, or `<sink>:<route>`. */
  name: string;
  config: S;
  /** The sink whose request pacing this lane shares (itself for a sink's own lane). */
  pacedBy: string;
}

export interface LaneIssue {
  path: (string | number)[];
  message: string;
}

/**
 * Resolves the lanes of a relay config. `parseSink` is the sink union schema; it validates each
 * derived config. Returns the issues instead of throwing, so the config's superRefine can
 * report them at their place.
 */
export function resolveLanes<S extends { name: string; kind: string }>(
  sinks: readonly S[],
  routes: readonly RouteConfig[],
  sinkSchema: z.ZodType<S>,
): { lanes: DeliveryLane<S>[]; issues: LaneIssue[] } {
  const byName = new Map(sinks.map((s) => [s.name, s]));
  const lanes: DeliveryLane<S>[] = sinks.map((s) => ({ name: s.name, config: s, pacedBy: s.name }));
  const issues: LaneIssue[] = [];
  const seen = new Set(lanes.map((l) => l.name));
  routes.forEach((route, i) =>
    route.sinks.forEach((target, j) => {
      const sinkName = typeof target === 'string' ? target : target.sink;
      const base = byName.get(sinkName);
      const at: (string | number)[] = ['routes', i, 'sinks', j];
      if (!base) {
        issues.push({ path: typeof target === 'string' ? at : [...at, 'sink'], message: `no sink named "${sinkName}"` });
        return;
      }
      if (typeof target === 'string') return;
      if (!route.name) {
        issues.push({ path: ['routes', i, 'name'], message: 'a route whose target carries its own mappings needs a name (it names the delivery lane)' });
        return;
      }
      if (!('mappings' in base)) {
        issues.push({ path: [...at, 'mappings'], message: `a ${base.kind} sink takes no mappings` });
        return;
      }
      const name = laneOf(route, target);
      if (seen.has(name)) {
        issues.push({ path: at, message: `route "${route.name}" already sends to "${sinkName}" with its own mappings` });
        return;
      }
      seen.add(name);
      // Parsed under the sink's own name (lane names carry a ':' that sink names may not).
      const parsed = sinkSchema.safeParse({ ...base, mappings: target.mappings });
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          const rest = issue.path[0] === 'mappings' ? issue.path.slice(1) : issue.path;
          issues.push({ path: [...at, 'mappings', ...(rest as (string | number)[])], message: issue.message });
        }
        return;
      }
      lanes.push({ name, config: { ...parsed.data, name }, pacedBy: base.name });
    }),
  );
  return { lanes, issues };
}
