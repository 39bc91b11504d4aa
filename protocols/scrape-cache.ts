/**
 * Values computed once per Prometheus scrape and shared by the gauges that need them (one
 * SQL query feeding three gauges). A value is computed on the first `collect()` of a scrape
 * and forgotten when the next scrape begins (`beginScrape`), or, for a scrape that did not
 * announce itself (a direct `registry.metrics()`), at the end of the current macrotask,
 * since all the collects of one scrape run synchronously one after another.
 */
export class ScrapeCache {
  private readonly resets: (() => void)[] = [];

  beginScrape(): void {
    for (const reset of this.resets) reset();
  }

  memo<T>(compute: () => T): () => T {
    let cached: { value: T } | undefined;
    this.resets.push(() => (cached = undefined));
    return () => {
      if (!cached) {
        const entry = { value: compute() };
        cached = entry;
        setImmediate(() => {
          if (cached === entry) cached = undefined;
        });
      }
      return cached.value;
    };
  }
}
