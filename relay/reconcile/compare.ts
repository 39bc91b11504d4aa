/**
 * Whether a record in the target still says what we last wrote. Targets give values back in
 * their own types and formats: HubSpot returns every property as a string, Salesforce a
 * datetime as `2026-11-23T10:00:00.000+0000` where we wrote `...Z`, NetSuite numbers as
 * numbers and a select field written `{ id }` as `{ id, refName }`. So values are compared by
 * meaning: numbers as numbers, times as instants (NetSuite keeps whole seconds: compared to the
 * second when the target's answer has no fraction and ours had one), booleans as booleans, objects by the keys we wrote.
 */

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

/** Salesforce's `+0000` offset is not one Date.parse reads everywhere: made `+00:00`. */
function instant(v: string): number | undefined {
  if (!ISO_TIME.test(v)) return undefined;
  const t = Date.parse(v.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  return Number.isFinite(t) ? t : undefined;
}

export function sameValue(expected: unknown, found: unknown): boolean {
  if (expected === found) return true;
  if (expected === undefined || expected === null) return found === undefined || found === null || found === '';
  // Salesforce answers an empty text field with null.
  if (expected === '') return found === undefined || found === null || found === '';
  if (found === undefined || found === null) return false;
  // Only a number or numeric text: Number('') and Number(false) are 0, and a cleared field is not 0.
  if (typeof expected === 'number') return typeof found === 'number' ? found === expected : typeof found === 'string' && found.trim() !== '' && Number(found) === expected;
  if (typeof expected === 'boolean') return String(found).toLowerCase() === String(expected);
  if (typeof expected === 'string') {
    const a = instant(expected);
    const b = typeof found === 'string' ? instant(found) : undefined;
    if (a !== undefined && b !== undefined) {
      if (a === b) return true;
      // A target that keeps whole seconds (NetSuite) answers without a fraction what we wrote with one.
      const truncatedByTarget = /\.\d/.test(expected) && !/\.\d/.test(found as string);
      return truncatedByTarget && Math.floor(a / 1000) === Math.floor(b / 1000);
    }
    if (typeof found === 'number') return Number(expected) === found;
    return String(found) === expected;
  }
  if (typeof expected === 'object' && typeof found === 'object') {
    // NetSuite answers a select field written as { id } with { id, refName }: what we wrote must
    // be there; what the target adds is its own business.
    if (Array.isArray(expected) !== Array.isArray(found)) return false;
    if (Array.isArray(expected)) return expected.length === (found as unknown[]).length && expected.every((v, i) => sameValue(v, (found as unknown[])[i]));
    return Object.entries(expected as Record<string, unknown>).every(([k, v]) => sameValue(v, Object.hasOwn(found as object, k) ? (found as Record<string, unknown>)[k] : undefined));
  }
  return false;
}

/** The fields whose value in the target differs from what we wrote, with both values. */
export function differingFields(expected: Record<string, unknown>, found: Record<string, unknown>): { field: string; expected: unknown; found: unknown }[] {
  const out: { field: string; expected: unknown; found: unknown }[] = [];
  for (const [field, value] of Object.entries(expected)) {
    const actual = Object.hasOwn(found, field) ? found[field] : undefined;
    if (!sameValue(value, actual)) out.push({ field, expected: value, found: actual ?? null });
  }
  return out;
}
