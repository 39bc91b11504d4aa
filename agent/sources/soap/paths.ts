/** Dotted element paths into objects the `soap` client parsed from XML (`shipments.Shipment`). */

export function getPath(value: unknown, path: string): unknown {
  let current = value;
  for (const step of path.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[step];
  }
  return current;
}

/** Whether every element of the path exists (its value may be empty: `<shipments/>` parses to null). */
export function hasPath(value: unknown, path: string): boolean {
  let current = value;
  for (const step of path.split('.')) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, step)) return false;
    current = (current as Record<string, unknown>)[step];
  }
  return true;
}

/** Sets a value at a dotted path, creating objects on the way. Mutates `target`. */
export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const steps = path.split('.');
  let current: Record<string, unknown> = target;
  for (const step of steps.slice(0, -1)) {
    const next = current[step];
    if (typeof next !== 'object' || next === null) current[step] = {};
    current = current[step] as Record<string, unknown>;
  }
  current[steps[steps.length - 1]!] = value;
}

/** A change time (ISO 8601 text or epoch ms) in Unix ms, or undefined. Sub-millisecond digits are truncated, which errs towards re-reading. */
export function timeMs(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.getTime();
  if (typeof value === 'string' && value.trim() !== '') {
    const text = value.trim();
    if (/^\d{10,16}$/.test(text)) return Number(text);
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}
