/**
 * Runs `plantlink agent|relay` as real child processes (the same entry point an installed
 * service runs), so tests can kill -9 them at any instant.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'installers', 'plantlink.ts');

export class PlantlinkProcess {
  private child: ChildProcess | undefined;
  private lines: string[] = [];
  private waiters: { test: (line: string) => boolean; resolve: () => void }[] = [];
  restarts = 0;

  constructor(
    readonly role: 'agent' | 'relay',
    private readonly configFile: string,
    private readonly logFile: string,
  ) {}

  start(): void {
    if (this.child) throw new Error(`${this.role} already running`);
    const log = createWriteStream(this.logFile, { flags: 'a' });
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, this.role, '--config', this.configFile], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PLANTLINK_LOG_LEVEL: undefined },
    });
    this.child = child;
    let buffer = '';
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        this.lines.push(line);
        if (this.lines.length > 5000) this.lines.splice(0, 1000);
        this.waiters = this.waiters.filter((w) => (w.test(line) ? (w.resolve(), false) : true));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    // Output may still arrive after 'exit' (stdio closes later): the log ends on 'close'.
    log.on('error', () => undefined);
    child.once('close', () => log.end());
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    child.once('error', (err) => {
      this.lines.push(`${this.role}: could not start: ${err.message}`);
      if (this.child === child) this.child = undefined;
    });
  }

  /** Resolves when a log line (from now on) matches. */
  waitForLog(test: RegExp | ((line: string) => boolean), timeoutMs = 30_000): Promise<void> {
    const fn = typeof test === 'function' ? test : (l: string) => test.test(l);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.role}: no log line matching ${String(test)} within ${timeoutMs} ms; see ${this.logFile}`)), timeoutMs);
      this.waiters.push({ test: fn, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  /** The child's process id while it runs (node itself, so also its `process.pid`). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** kill -9: no cleanup, no flush, no goodbye. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Graceful stop (SIGTERM, as systemd does). */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    return exited;
  }

  async restart(): Promise<void> {
    await this.kill9();
    this.restarts++;
    this.start();
  }
}
