/**
 * One access token shared by every caller of a sink.
 *
 * Invariants:
 * - Concurrent `get` calls share one token request (single flight); a failed request
 *   is not cached, so the next `get` asks again.
 * - A cached token is handed out while `isFresh` says so; a token source whose tokens
 *   expire refreshes them early by answering false before the expiry.
 * - `invalidate` forgets a token only while it is still the current one, so a caller
 *   holding a stale token cannot drop the fresh one another caller already fetched.
 */
export class TokenCache<T> {
  private current: T | undefined;
  private pending: Promise<T> | undefined;

  constructor(
    private readonly request: () => Promise<T>,
    private readonly isFresh: (token: T) => boolean = () => true,
  ) {}

  get(): Promise<T> {
    if (this.current && this.isFresh(this.current)) return Promise.resolve(this.current);
    this.pending ??= this.request()
      .then((token) => (this.current = token))
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }

  invalidate(token: T): void {
    if (this.current === token) this.current = undefined;
  }
}
