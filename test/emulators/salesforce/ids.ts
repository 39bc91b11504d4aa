/**
 * Salesforce-shaped record ids: a 3-character key prefix per object, then a
 * 12-character body, then the documented 3-character case-safety suffix that turns
 * a 15-character case-sensitive id into the 18-character case-insensitive form the
 * REST API returns. Ids are unique per emulator instance, never reused.
 */
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SUFFIX = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';

/** Key prefix for the n-th custom object: a00, a01, ... a0z, a10, ... */
export function keyPrefix(index: number): string {
  return `a${BASE62[Math.floor(index / 62) % 62]}${BASE62[index % 62]}`;
}

/** Appends the case-safety suffix: one character per 5-character chunk, one bit per upper-case letter. */
export function to18(id15: string): string {
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id15.charCodeAt(chunk * 5 + i);
      if (c >= 65 && c <= 90) bits |= 1 << i;
    }
    suffix += SUFFIX[bits];
  }
  return id15 + suffix;
}

export class IdGenerator {
  private counter = 0;
  constructor(private readonly pod = '5P') {}

  next(prefix: string): string {
    let n = ++this.counter;
    let body = '';
    for (let i = 0; i < 10; i++) {
      body = BASE62[n % 62] + body;
      n = Math.floor(n / 62);
    }
    return to18(`${prefix}${this.pod}${body}`);
  }
}
