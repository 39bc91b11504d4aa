/** A real agent for integration tests: one file drop source of production milestones (JSON lines), uplink to a relay. */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentConfig } from '../../agent/config.js';

export const SOURCE = 'mes-files';

export function fileAgentConfig(options: { dir: string; url: string; token: string; id: string; plant: string; metrics?: boolean }): AgentConfig {
  const drop = join(options.dir, 'drop');
  mkdirSync(drop, { recursive: true });
  return AgentConfig.parse({
    agent: { id: options.id, plant: options.plant, dataDir: join(options.dir, 'agent-data') },
    uplink: { kind: 'websocket', url: options.url, token: options.token, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, statusIntervalMs: 100 },
    sources: [
      {
        name: SOURCE,
        kind: 'file',
        folder: drop,
        pattern: '*.jsonl',
        format: { type: 'jsonl' },
        ready: { mode: 'rename' },
        watch: { mode: 'events', pollIntervalMs: 100 },
        map: { event: 'milestone', key: 'WO', occurredAt: 'At', fields: { milestone: 'Milestone', equipment: 'Line' } },
      },
    ],
    ...(options.metrics ? { metrics: { listen: { host: '127.0.0.1', port: 0 } } } : {}),
  });
}

/** Drops a complete file of `released` milestones, one per work order, into the agent's drop folder (written aside, then renamed in). */
export function dropMilestones(config: AgentConfig, file: string, workOrders: readonly string[], atMs = Date.now()): void {
  const folder = (config.sources[0] as { folder: string }).folder;
  const lines = workOrders.map((wo, i) => JSON.stringify({ WO: wo, Milestone: 'released', Line: 'L1', At: new Date(atMs + i).toISOString() }));
  writeFileSync(join(folder, `${file}.part`), `${lines.join('\n')}\n`);
  renameSync(join(folder, `${file}.part`), join(folder, file));
}
