/**
 * A throwaway Mosquitto 2 broker on a loopback port, for the tests of the relay's external
 * broker mode.
 *
 * Facts this helper is built on (Debian's mosquitto 2.0, which `.ci/run` installs where
 * missing; the package does not start a broker on these machines):
 * - Mosquitto 2 listens nowhere without an explicit `listener PORT 127.0.0.1` line, and
 *   refuses every client without `allow_anonymous true` or a password file.
 * - Started as root it drops privileges to the `mosquitto` user, which then cannot open a
 *   log file in our private (0700, root-owned) temp folder: it keeps running but logs
 *   nothing. `user root` in the config keeps it root (it warns; a non-root user ignores the
 *   option), so the log lands next to the config.
 * - Debian puts the binary in /usr/sbin, which a non-root PATH may lack: both are searched.
 * - `mosquitto_passwd -U FILE` hashes a file of `user:password` lines in place.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../sim/stack-configs.js';

function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin'];
  for (const dir of dirs) if (dir && existsSync(join(dir, name))) return join(dir, name);
  throw new Error(`${name} not found on PATH or in /usr/sbin: install Debian's mosquitto package (.ci/run does)`);
}

export interface MosquittoOptions {
  /** username -> password; written hashed to a password file. */
  users: Record<string, string>;
  /** The ACL file's text (see protocols/uplink/MQTT.md). */
  acl: string;
  /** Extra lines for the listener section, e.g. `use_username_as_clientid true`. */
  listenerOptions?: string[];
  /** `max_packet_size`; default: the test relays' frame limit plus MQTT's headroom. */
  maxPacketSize?: number;
}

export class Mosquitto {
  private child: ChildProcess | undefined;
  readonly logFile: string;
  private readonly configFile: string;

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    this.logFile = join(dir, 'mosquitto.log');
    this.configFile = join(dir, 'mosquitto.conf');
  }

  /** Writes the config, password and ACL files into `dir` and starts the broker. */
  static async start(dir: string, options: MosquittoOptions): Promise<Mosquitto> {
    const broker = new Mosquitto(dir, await freePort());
    const passwords = join(dir, 'passwords');
    writeFileSync(passwords, Object.entries(options.users).map(([u, p]) => `${u}:${p}\n`).join(''), { mode: 0o600 });
    execFileSync(findBinary('mosquitto_passwd'), ['-U', passwords], { stdio: 'ignore' });
    const acl = join(dir, 'acl');
    writeFileSync(acl, options.acl);
    writeFileSync(
      broker.configFile,
      [
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        'persistence false',
        // As MQTT.md recommends: without it a small ack queued behind another waits for a delayed ACK.
        'set_tcp_nodelay true',
        // As MQTT.md documents: the relay's maxFrameBytes (256 KiB in the test relays) + 64 KiB of MQTT headers.
        `max_packet_size ${options.maxPacketSize ?? 256 * 1024 + 64 * 1024}`,
        `log_dest file ${broker.logFile}`,
        'log_type error',
        'log_type warning',
        'log_type notice',
        'log_type information',
        'allow_anonymous false',
        `password_file ${passwords}`,
        `acl_file ${acl}`,
        `listener ${broker.port} 127.0.0.1`,
        ...(options.listenerOptions ?? []),
        '',
      ].join('\n'),
    );
    await broker.restart();
    return broker;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the broker on the same port; resolves once it accepts connections. */
  async restart(): Promise<void> {
    if (this.child) throw new Error('mosquitto is already running');
    const child = spawn(findBinary('mosquitto'), ['-c', this.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let exited: string | undefined;
    child.once('exit', (code, signal) => {
      exited = `exited (${code ?? signal})`;
      if (this.child === child) this.child = undefined;
    });
    this.child = child;
    for (let i = 0; i < 500; i++) {
      if (exited) throw new Error(`mosquitto ${exited}: ${stderr}\n${this.log()}`);
      if (await accepts(this.port)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`mosquitto did not listen on ${this.port}: ${stderr}\n${this.log()}`);
  }

  /** SIGKILL: the broker dies with whatever it held (no persistence: sessions and retained messages are gone). */
  kill(): Promise<void> {
    return this.signal('SIGKILL');
  }

  stop(): Promise<void> {
    return this.signal('SIGTERM');
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '(no log)';
  }

  private signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
