/**
 * node-opcua writes its warnings and errors straight to the console through process-wide
 * hooks. This routes them into our structured logs (or nowhere), so an agent's output
 * stays JSON and tests stay quiet.
 *
 * The hooks are process-wide, so the first logger handed in wins; later calls only
 * make sure the hooks are installed. node-opcua's "errors" during a reconnection are
 * expected noise (it logs every failed attempt), so they go out at debug level; what
 * matters is reported by the subscription client's own health and logs.
 */
import { setErrorLogger, setWarningLogger } from 'node-opcua';
import type { Logger } from '../log.js';

let installed = false;
let sink: Logger | undefined;

/** One argument as text; never throws (the hooks run inside node-opcua's socket and timer callbacks). */
function text(a: unknown): string {
  if (typeof a === 'string') return a;
  if (a instanceof Error) return a.message;
  try {
    return JSON.stringify(a) ?? String(a);
  } catch {
    // A circular structure or a BigInt.
    return typeof a === 'bigint' ? String(a) : Object.prototype.toString.call(a);
  }
}

export function format(args: unknown[]): string {
  return args
    .map(text)
    .join(' ')
    // strip ANSI colours node-opcua adds with chalk
    .replace(/\u001b\[[0-9;]*m/g, '')
    .slice(0, 2000);
}

export function routeNodeOpcuaLogs(logger?: Logger): void {
  if (logger && !sink) sink = logger.child({ component: 'node-opcua' });
  if (installed) return;
  installed = true;
  setWarningLogger((...args: unknown[]) => sink?.debug({ nodeOpcuaLevel: 'warning' }, format(args)));
  setErrorLogger((...args: unknown[]) => sink?.debug({ nodeOpcuaLevel: 'error' }, format(args)));
}
