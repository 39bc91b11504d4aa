/**
 * MQTT uplink: events/s from a full outbox through the MQTT uplink, a broker and the relay
 * into the relay's inbox (validation, plant checks, fsync'd commit per batch, the ack back to
 * the agent, the outbox delete), against a plain mqtt.js QoS 1 publish loop of the same
 * payloads (same bytes, 100 events per message, the same window of unacknowledged messages)
 * from a publisher to a plain consumer through the same broker, measured in the same run.
 *
 * Brokers: aedes (embedded in the relay, consumed in-process; the baseline uses a bare aedes
 * of the same version in this process, consumed in-process too) and Mosquitto 2 (the relay
 * consumes through a shared subscription, MQTT 5; the baseline consumer is a plain mqtt.js
 * client). Everything on this machine's loopback; median of `runs` runs, alternating. For
 * context, the aedes runs also drain the same outbox size through the WebSocket uplink into the
 * same relay: the uplink's cost is mostly the relay's per-batch work (validation, fsync'd commit)
 * and the agent's (fsync'd delete), whatever the transport.
 *
 *   node --import tsx bench/mqtt-uplink.ts [--quick]
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Aedes } from 'aedes';
import { connectAsync, type MqttClient } from 'mqtt';
import { Outbox } from '../agent/outbox/outbox.js';
import { MqttUplinkConfig } from '../agent/uplink/mqtt-config.js';
import { MqttUplink } from '../agent/uplink/mqtt-uplink.js';
import { WebSocketUplinkConfig } from '../agent/uplink/config.js';
import { WebSocketUplink } from '../agent/uplink/ws-uplink.js';
import { milestoneDraft } from '../test/helpers/drafts.js';
import { Mosquitto } from '../test/helpers/mosquitto.js';
import { startMqttRelay, testAgents } from '../test/helpers/mqtt-relay.js';
import { tempDir, testLogger } from '../test/helpers/temp.js';

const BATCH = 100;
const WINDOW = 8; // the relay's default maxInFlight; the baseline keeps as many unacknowledged
const T0 = Date.parse('2026-11-23T08:00:00Z');

export interface MqttBenchResult {
  broker: 'aedes' | 'mosquitto';
  events: number;
  /** events/s, agent outbox -> broker -> relay inbox, acked back (median). */
  plantlink: number;
  /** events/s, plain QoS 1 publish loop -> broker -> plain consumer (median). */
  baseline: number;
  /** Bytes of one 100-event message. */
  messageBytes: number;
  /** For context: the WebSocket uplink into the same relay, same batches (aedes run only). */
  websocket?: number;
  /** Mosquitto only: two relay replicas sharing the subscription ($share), both in this process (median). */
  twoReplicas?: number;
}

let offset = 0;
function fillOutbox(dir: string, total: number): Outbox {
  const outbox = new Outbox({ path: join(dir, `outbox-${offset}.sqlite`), plant: 'plant-a', maxBytes: 1e12, maxEvents: 1e9, onFull: 'pause' });
  for (let i = 0; i < total; i += 1000) {
    // Fresh work orders every run, so the relay stores new events rather than deduping old ones.
    outbox.append('line', Array.from({ length: Math.min(1000, total - i) }, (_, j) => milestoneDraft(`WO-${offset + i + j}`, 'released', T0 + offset + i + j)));
  }
  offset += total;
  return outbox;
}

/** Drains a full outbox through the uplink; events/s from the relay's welcome to the last ack. */
async function plantlinkRun(dir: string, total: number, uplink: Record<string, unknown>): Promise<number> {
  const outbox = fillOutbox(dir, total);
  const config = { maxBatchEvents: BATCH, maxInFlight: WINDOW, ...uplink };
  const identity = { agentId: 'agent-a', plant: 'plant-a' };
  const u =
    uplink.kind === 'websocket'
      ? new WebSocketUplink(WebSocketUplinkConfig.parse(config), outbox, testLogger())
      : new MqttUplink(MqttUplinkConfig.parse({ kind: 'mqtt', ...config }), outbox, identity, testLogger());
  try {
    const seconds = await new Promise<number>((resolve, reject) => {
      let t0 = 0;
      const timer = setTimeout(() => reject(new Error(`uplink did not drain (${outbox.stats().pending} pending, ${JSON.stringify(u.status())})`)), 300_000);
      u.on('state', (h) => {
        if (h.state === 'connected' && t0 === 0) t0 = performance.now();
      });
      u.on('acked', () => {
        if (outbox.stats().pending === 0) {
          clearTimeout(timer);
          resolve((performance.now() - t0) / 1000);
        }
      });
      u.start();
    });
    return total / seconds;
  } finally {
    await u.stop();
    outbox.close();
  }
}

/** The same payloads through a plain QoS 1 publish loop (WINDOW unacknowledged) to a consumer; events/s until the consumer has all. */
async function baselineRun(publisher: MqttClient, topic: string, frames: string[], consumed: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  const done = consumed();
  let next = 0;
  await new Promise<void>((resolve, reject) => {
    let inFlight = 0;
    const pump = () => {
      while (inFlight < WINDOW && next < frames.length) {
        inFlight++;
        publisher.publish(topic, frames[next++]!, { qos: 1 }, (err) => {
          if (err) return reject(err);
          inFlight--;
          if (next === frames.length && inFlight === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  await done;
  return (frames.length * BATCH) / ((performance.now() - t0) / 1000);
}

/** Messages of BATCH events, byte for byte the frames the uplink sends. */
function frames(dir: string, total: number): string[] {
  const outbox = fillOutbox(dir, total);
  const rows = outbox.readPending(0, total, 1e12);
  outbox.close();
  const out: string[] = [];
  for (let i = 0; i < rows.length; i += BATCH) out.push(`{"t":"batch","batch":${i / BATCH},"events":[${rows.slice(i, i + BATCH).map((r) => r.body).join(',')}]}`);
  return out;
}

/** A consumer's promise of `count` messages, for one run. */
function counter(count: number, onMessage: (listener: () => void) => () => void): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      let seen = 0;
      const off = onMessage(() => {
        if (++seen === count) {
          off();
          resolve();
        }
      });
    });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function benchAedes(dir: string, total: number, runs: number): Promise<MqttBenchResult> {
  const agents = testAgents();
  // Baseline broker: a bare aedes, consumed in-process like the relay consumes its own.
  const bare = await Aedes.createBroker();
  const server = createServer(bare.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const listeners = new Set<() => void>();
  await new Promise<void>((resolve) =>
    bare.subscribe('bench/events', (_p, cb) => {
      for (const l of listeners) l();
      cb();
    }, resolve),
  );
  const publisher = await connectAsync(`mqtt://127.0.0.1:${(server.address() as { port: number }).port}`, { protocolVersion: 4, clientId: 'bench-publisher' });
  const payloads = frames(dir, total);
  const consumed = counter(payloads.length, (l) => {
    listeners.add(l);
    return () => listeners.delete(l);
  });
  const plantlink: number[] = [];
  const baseline: number[] = [];
  const websocket: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      baseline.push(await baselineRun(publisher, 'bench/events', payloads, consumed));
      const relay = await startMqttRelay(join(dir, `relay-aedes-${run}`), { listeners: { tcp: { host: '127.0.0.1', port: 0 } } }, { agents, ingress: { maxBatchEvents: BATCH } });
      try {
        plantlink.push(await plantlinkRun(dir, total, { url: `mqtt://127.0.0.1:${relay.ports.tcp}`, token: agents.tokens.a, protocolVersion: 4 }));
        websocket.push(await plantlinkRun(dir, total, { kind: 'websocket', url: relay.relay.wsUrl, token: agents.tokens.a }));
      } finally {
        await relay.stop();
      }
    }
  } finally {
    await publisher.endAsync();
    await new Promise<void>((resolve) => bare.close(() => server.close(() => resolve())));
  }
  return { broker: 'aedes', events: total, plantlink: median(plantlink), baseline: median(baseline), messageBytes: Buffer.byteLength(payloads[0]!), websocket: median(websocket) };
}

async function benchMosquitto(dir: string, total: number, runs: number): Promise<MqttBenchResult> {
  const agents = testAgents();
  const broker = await Mosquitto.start(dir, {
    users: { 'relay-1': 'relay-password', 'relay-2': 'relay-password', 'agent-a': agents.tokens.a, bench: 'bench-password' },
    acl: [
      'user relay-1',
      'topic read plantlink/v1/+/+/events',
      'topic write plantlink/v1/+/+/acks',
      'user relay-2',
      'topic read plantlink/v1/+/+/events',
      'topic write plantlink/v1/+/+/acks',
      'user agent-a',
      'topic write plantlink/v1/plant-a/agent-a/events',
      'topic read plantlink/v1/plant-a/agent-a/acks',
      'user bench',
      'topic readwrite bench/#',
      '',
    ].join('\n'),
  });
  const publisher = await connectAsync(broker.url, { protocolVersion: 5, clientId: 'bench-publisher', username: 'bench', password: 'bench-password' });
  const consumer = await connectAsync(broker.url, { protocolVersion: 5, clientId: 'bench-consumer', username: 'bench', password: 'bench-password' });
  await consumer.subscribeAsync('bench/events', { qos: 1 });
  const payloads = frames(dir, total);
  const consumed = counter(payloads.length, (l) => {
    consumer.on('message', l);
    return () => consumer.off('message', l);
  });
  const plantlink: number[] = [];
  const baseline: number[] = [];
  const twoReplicas: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      baseline.push(await baselineRun(publisher, 'bench/events', payloads, consumed));
      // Two replicas on the shared subscription (each with its own SQLite inbox here): the
      // broker splits the agent's batches between them.
      const replicas = await Promise.all(
        ['relay-1', 'relay-2'].map((id) =>
          startMqttRelay(
            join(dir, `replica-${id}-${run}`),
            { external: { url: broker.url, username: id, password: 'relay-password', clientId: id, reconnectMs: 100 } },
            { agents, ingress: { maxBatchEvents: BATCH } },
          ),
        ),
      );
      try {
        twoReplicas.push(await plantlinkRun(dir, total, { url: broker.url, token: agents.tokens.a, protocolVersion: 5 }));
      } finally {
        for (const r of replicas) await r.stop();
      }
      const relay = await startMqttRelay(
        join(dir, `relay-mosquitto-${run}`),
        { external: { url: broker.url, username: 'relay-1', password: 'relay-password', clientId: 'relay-1', reconnectMs: 100 } },
        { agents, ingress: { maxBatchEvents: BATCH } },
      );
      try {
        // The relay subscribes before it publishes the welcome the agent waits for.
        plantlink.push(await plantlinkRun(dir, total, { url: broker.url, token: agents.tokens.a, protocolVersion: 5 }));
      } finally {
        await relay.stop();
      }
    }
  } finally {
    await publisher.endAsync();
    await consumer.endAsync();
    await broker.stop();
  }
  return { broker: 'mosquitto', events: total, plantlink: median(plantlink), baseline: median(baseline), messageBytes: Buffer.byteLength(payloads[0]!), twoReplicas: median(twoReplicas) };
}

/** Both brokers, `total` events each run. */
export async function mqttUplinkBench(total: number, runs = 3): Promise<MqttBenchResult[]> {
  const { dir, cleanup } = tempDir('plantlink-bench-mqtt-');
  try {
    return [await benchAedes(dir, total, runs), await benchMosquitto(dir, total, runs)];
  } finally {
    cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
  const total = values.quick ? 20_000 : 100_000;
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(10);
  console.log(`MQTT uplink, ${total.toLocaleString('en-US')} events per run, ${BATCH} per message, ${WINDOW} in flight, median of 3`);
  console.log('broker     | plantlink ev/s | plain QoS 1 ev/s | ratio | message bytes | websocket uplink, same relay');
  for (const r of await mqttUplinkBench(total)) {
    const ws = r.websocket === undefined ? '' : `${fmt(r.websocket)} ev/s`;
    console.log(`${r.broker.padEnd(10)} | ${fmt(r.plantlink)}     | ${fmt(r.baseline)}       | ${(r.plantlink / r.baseline).toFixed(2).padStart(5)} | ${String(r.messageBytes).padStart(13)} | ${ws}`);
    if (r.twoReplicas !== undefined) {
      console.log(`${r.broker.padEnd(10)} | ${fmt(r.twoReplicas)}     | two relay replicas sharing the subscription ($share), one process; ratio ${(r.twoReplicas / r.baseline).toFixed(2)}`);
    }
  }
  process.exit(0);
}
