/**
 * The single executable (`npm run package`, installers/sea/build.ts), built for real and run
 * from an empty folder with no node_modules and no Node.js on PATH: the CLI, config checks, a
 * loopback stack in which the binary runs the relay and the agent as two processes and the
 * plant's milestones reach the relay's inbox and the CRM, and OPC UA security (certificate
 * creation and trust) inside the binary. The Windows executable is built too and checked as a file.
 *
 * Never skipped: a missing prerequisite (npm registry unreachable with an empty cache, a build
 * host other than Linux x64) fails the build step with the reason.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BETTER_SQLITE3_VERSION, NODE_VERSION, SEA_FUSE } from '../../installers/sea/targets.js';
import { SalesforceEmulator } from '../emulators/salesforce/salesforce-emulator.js';
import { tempDir } from '../helpers/temp.js';
import { PlantSimulator } from '../sim/plant/plant-simulator.js';
import { freePort, writeStackConfigs } from '../sim/stack-configs.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const run = promisify(execFile);
/** Where the build keeps the runtimes and better-sqlite3's package (as installers/sea/build.ts does). */
const CACHE = process.env.PLANTLINK_SEA_CACHE ?? join(ROOT, '.cache');

const { dir: work, cleanup } = tempDir('plantlink-sea-');
const outDir = join(work, 'out');
/** The folder the binary runs from: nothing but the binary and its configs. */
const binDir = join(work, 'bin');
const binary = join(binDir, 'plantlink');
/** PATH without any folder holding a `node`, so nothing can fall back to an installed Node.js. */
const PATH_WITHOUT_NODE = '/nonexistent';
const baseEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ PATH: PATH_WITHOUT_NODE, HOME: work, TMPDIR: join(work, 'tmp'), ...extra });

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function plantlink(args: string[], env: Record<string, string> = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await run(binary, args, { cwd: binDir, env: baseEnv(env), timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    if (typeof x.code !== 'number') throw e;
    return { code: x.code, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

let buildSeconds = 0;

beforeAll(async () => {
  mkdirSync(join(work, 'tmp'), { recursive: true });
  const t0 = performance.now();
  try {
    await run(process.execPath, ['--import', 'tsx', join(ROOT, 'installers', 'sea', 'build.ts'), '--target', 'linux-x64', '--target', 'win-x64', '--out', outDir], {
      cwd: ROOT,
      timeout: 280_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; message?: string };
    throw new Error(`npm run package failed (needs a Linux x64 host, and the npm registry or a filled .cache/):\n${x.stderr || x.message}\n${x.stdout ?? ''}`);
  }
  buildSeconds = (performance.now() - t0) / 1000;
  process.stdout.write(`single executables built in ${buildSeconds.toFixed(1)} s\n`);
  mkdirSync(binDir);
  copyFileSync(join(outDir, 'plantlink-linux-x64'), binary);
  copyFileSync(join(ROOT, 'config', 'agent.example.yaml'), join(binDir, 'agent.yaml'));
  copyFileSync(join(ROOT, 'config', 'relay.example.yaml'), join(binDir, 'relay.yaml'));
}, 300_000);

afterAll(() => {
  if (!process.env.PLANTLINK_KEEP_SEA_TEST) cleanup();
});

describe('the Linux single executable', () => {
  it('runs from a folder holding nothing but itself and its configs', () => {
    expect(readdirSync(binDir).sort()).toEqual(['agent.yaml', 'plantlink', 'relay.yaml']);
    expect(statSync(binary).mode & 0o111).not.toBe(0);
  });

  it('prints the package version with --version', async () => {
    const r = await plantlink(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
  });

  it('accepts the example agent config and refuses it without the token variable', async () => {
    const ok = await plantlink(['agent', 'check', '--config', 'agent.yaml'], { PLANTLINK_AGENT_TOKEN: 'test-token-0123456789' });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/agent\.yaml: valid \(agent plant-essen-agent-1, plant plant-essen, 1 source\(s\)\)/);
    const missing = await plantlink(['agent', 'check', '--config', 'agent.yaml']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/environment variable PLANTLINK_AGENT_TOKEN is not set/);
  });

  it('accepts the example relay config and refuses it without the Salesforce variables', async () => {
    const ok = await plantlink(['relay', 'check', '--config', 'relay.yaml'], { SALESFORCE_CLIENT_ID: 'id', SALESFORCE_CLIENT_SECRET: 'secret' });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/relay\.yaml: valid \(1 agent\(s\), 1 sink\(s\), 1 route\(s\)\)/);
    const missing = await plantlink(['relay', 'check', '--config', 'relay.yaml']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/SALESFORCE_CLIENT_ID is not set/);
  });

  it('says the demo needs a source checkout instead of failing obscurely', async () => {
    const r = await plantlink(['demo']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the demo runs from a source checkout/);
  });

  it('runs the relay and the agent as two processes and the plant milestones reach the inbox and the CRM', async () => {
    const stackDir = join(work, 'stack');
    mkdirSync(stackDir);
    const plant = await PlantSimulator.start({ lines: ['L1'], stepMs: 50, quantityPerOrder: 3, holdEvery: 2, workOrdersPerLine: 2 });
    plant.pause(); // starts once the agent is subscribed, so every milestone is seen live
    const crm = await SalesforceEmulator.start();
    const relayPort = await freePort();
    const { relayFile, agentFile, relay: relayConfig } = writeStackConfigs(
      stackDir,
      { opcuaEndpoint: plant.endpointUrl, nodeIds: (l) => plant.nodeIdsFor(l), lines: ['L1'], salesforceUrl: crm.url, relayPort },
      { fastRetries: true },
    );
    const nativeDir = join(work, 'agent-native');
    const relay = new Service('relay', relayFile, join(stackDir, 'relay.log'), {}); // addon to $TMPDIR/plantlink-native-<uid>
    const agent = new Service('agent', agentFile, join(stackDir, 'agent.log'), { PLANTLINK_NATIVE_DIR: nativeDir });
    try {
      relay.start();
      await relay.waitFor(/"msg":"relay started"/);
      const subscribed = agent.waitFor(/"msg":"subscribed to the OPC UA server"/, 60_000);
      agent.start();
      await subscribed;
      plant.resume();
      await plant.finished();

      const expected = plant.truth.length;
      expect(expected).toBeGreaterThan(0);
      const inboxFile = join(relayConfig.relay.dataDir, 'inbox.sqlite');
      const inboxCount = () => {
        if (!existsSync(inboxFile)) return 0;
        const db = new Database(inboxFile, { readonly: true, fileMustExist: true });
        try {
          return (db.prepare('SELECT count(*) AS n FROM inbox').get() as { n: number }).n;
        } finally {
          db.close();
        }
      };
      const landed = () => crm.records('Production_Milestone__c').length;
      const deadline = Date.now() + 60_000;
      while ((inboxCount() < expected || landed() < expected) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(inboxCount(), `events in the relay inbox; logs in ${stackDir}`).toBe(expected);
      expect(landed(), 'milestone records in the CRM').toBe(expected);

      // Each process wrote better-sqlite3's addon to its private folder and loaded it from there.
      expect(readdirSync(nativeDir)).toEqual([expect.stringMatching(/^better_sqlite3-[0-9a-f]{16}\.node$/)]);
      expect(readdirSync(join(work, 'tmp', `plantlink-native-${process.getuid!()}`))).toEqual([expect.stringMatching(/^better_sqlite3-[0-9a-f]{16}\.node$/)]);

      // The web console's front end rides inside the binary (built at package time; the
      // executable has no esbuild to build it with): the login page and the app bundle answer.
      const login = await fetch(`http://127.0.0.1:${relayPort}/console/login`);
      expect(login.status).toBe(200);
      expect(await login.text()).toContain('relay console');
      const app = await fetch(`http://127.0.0.1:${relayPort}/console/app.js`);
      expect(app.status, `GET /console/app.js; logs in ${stackDir}`).toBe(200);
      expect(await app.text()).toContain('Plants and agents');

      // The container HEALTHCHECK's probe: ready while the relay runs, not once it is gone.
      const healthy = await plantlink(['relay', 'health', '--config', relayFile]);
      expect(healthy.code, healthy.stderr).toBe(0);
      expect(healthy.stdout).toMatch(/^ready: HTTP 200/);

      // SIGTERM (systemd's stop, WinSW's stop) ends both cleanly.
      expect(await agent.stop()).toBe(0);
      expect(await relay.stop()).toBe(0);
      const gone = await plantlink(['relay', 'health', '--config', relayFile]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/^not ready: .*ECONNREFUSED/);

      // The agent's outbox, read back by the binary: nothing left pending after the relay's acks.
      const status = await plantlink(['agent', 'status', '--config', agentFile, '--json'], { PLANTLINK_NATIVE_DIR: nativeDir });
      expect(status.code, status.stderr).toBe(0);
      expect((JSON.parse(status.stdout) as { outbox: { pending: number } }).outbox.pending).toBe(0);
    } finally {
      await agent.kill();
      await relay.kill();
      await plant.stop();
      await crm.stop();
    }
  }, 180_000);
});

describe('the Linux single executable with OPC UA security', () => {
  it('makes its own certificate, files the unknown server certificate as rejected, and subscribes with SignAndEncrypt once `agent trust` accepts it (no openssl on PATH)', async () => {
    const dir = join(work, 'secure');
    mkdirSync(dir);
    const plant = await PlantSimulator.start({ lines: ['L1'], securityModes: ['SignAndEncrypt'], pkiDir: join(dir, 'plant-pki'), workOrdersPerLine: 1 });
    plant.pause();
    const agentFile = join(dir, 'agent.yaml');
    writeFileSync(
      agentFile,
      stringify({
        agent: { id: 'secure-agent', plant: 'plant-1', dataDir: join(dir, 'agent-data') },
        // No relay in this test: the agent keeps retrying its uplink, which is fine.
        uplink: { kind: 'websocket', url: `ws://127.0.0.1:${await freePort()}/v1/uplink`, token: 'a-token-of-sufficient-length' },
        sources: [
          {
            name: 'line-opcua',
            kind: 'opcua',
            endpointUrl: plant.endpointUrl,
            security: { mode: 'SignAndEncrypt' },
            lines: [{ equipment: 'L1', unit: 'EA', nodes: plant.nodeIdsFor('L1'), states: { Idle: 'idle', Released: 'released', Running: 'running', Held: 'held', Completed: 'completed' } }],
          },
        ],
      }),
    );
    const env = { PLANTLINK_NATIVE_DIR: join(work, 'agent-native') };
    const agent = new Service('agent', agentFile, join(dir, 'agent.log'), env);
    try {
      const untrusted = agent.waitFor(/"kind":"server-certificate-untrusted"/, 60_000);
      agent.start();
      await untrusted;
      expect(await agent.stop()).toBe(0);
      expect(readdirSync(join(dir, 'agent-data', 'pki', 'own', 'certs'))).toContain('client_certificate.pem');

      const trust = await plantlink(['agent', 'trust', '--config', agentFile, '--all-rejected'], env);
      expect(trust.code, trust.stderr).toBe(0);
      expect(trust.stdout).toMatch(/^1 certificate\(s\) trusted/m);

      const subscribed = agent.waitFor(/"msg":"subscribed to the OPC UA server"/, 60_000);
      agent.start();
      await subscribed;
      expect(await agent.stop()).toBe(0);
    } finally {
      await agent.kill();
      await plant.stop();
    }
  }, 150_000);
});

describe('the Windows x64 single executable (built here, not run: no Windows)', () => {
  const exe = () => readFileSync(join(outDir, 'plantlink-win-x64.exe'));

  it('is an unsigned PE file with the SEA blob injected and its fuse set', () => {
    const file = exe();
    expect(file.toString('latin1', 0, 2)).toBe('MZ');
    const pe = file.readUInt32LE(0x3c);
    expect(file.toString('latin1', pe, pe + 4)).toBe('PE\0\0');
    const optional = pe + 24;
    expect(file.readUInt16LE(optional)).toBe(0x20b); // PE32+
    expect(file.readUInt16LE(pe + 4)).toBe(0x8664); // AMD64
    // Security directory emptied: Node's signature removed (it would not match after injection).
    expect([file.readUInt32LE(optional + 112 + 32), file.readUInt32LE(optional + 112 + 36)]).toEqual([0, 0]);
    // postject flips the fuse from :0 to :1 when it injects the blob.
    expect(file.includes(`${SEA_FUSE}:1`)).toBe(true);
    expect(file.includes(`${SEA_FUSE}:0`)).toBe(false);
  });

  it('carries the bundle and the Windows build of the better-sqlite3 addon', () => {
    const file = exe();
    expect(file.includes('the demo runs from a source checkout')).toBe(true);
    const addon = readFileSync(join(CACHE, `better-sqlite3-${BETTER_SQLITE3_VERSION}`, 'package', 'prebuilds', 'win32-x64.node'));
    expect(addon.toString('latin1', 0, 2)).toBe('MZ');
    expect(file.includes(addon)).toBe(true);
    // ... and not the Linux one.
    const linuxAddon = readFileSync(join(CACHE, `better-sqlite3-${BETTER_SQLITE3_VERSION}`, 'package', 'prebuilds', 'linux-x64.node'));
    expect(file.includes(linuxAddon.subarray(0, 4096))).toBe(false);
  });

  it('is Node.js ' + NODE_VERSION + ' for Windows', () => {
    expect(exe().includes(`v${NODE_VERSION}`)).toBe(true);
  });

  it('is listed with its checksum in SHA256SUMS next to the Linux binary', () => {
    const sums = readFileSync(join(outDir, 'SHA256SUMS'), 'utf8');
    expect(sums).toMatch(/^[0-9a-f]{64} {2}plantlink-linux-x64\n[0-9a-f]{64} {2}plantlink-win-x64\.exe\n$/);
  });
});

/** One `plantlink agent|relay` process of the binary, with its log lines. */
class Service {
  private child: ChildProcess | undefined;
  private waiters: { re: RegExp; resolve: () => void }[] = [];

  constructor(
    private readonly role: 'agent' | 'relay',
    private readonly config: string,
    private readonly logFile: string,
    private readonly env: Record<string, string>,
  ) {}

  start(): void {
    const log = createWriteStream(this.logFile, { flags: 'a' });
    const child = spawn(binary, [this.role, 'run', '--config', this.config], { cwd: binDir, env: baseEnv(this.env), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let buffer = '';
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        this.waiters = this.waiters.filter((w) => (w.re.test(line) ? (w.resolve(), false) : true));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', () => {
      log.end();
      if (this.child === child) this.child = undefined;
    });
  }

  waitFor(re: RegExp, timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.role}: no log line matching ${re} within ${timeoutMs} ms; see ${this.logFile}`)), timeoutMs);
      this.waiters.push({ re, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    return exited;
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
}
