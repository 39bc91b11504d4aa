import { useCallback, useEffect, useState } from 'preact/hooks';
import { api } from './api.js';

/** GETs `path` now and every `everyMs`; returns [data, error, reload]. */
export function usePoll(path, everyMs = 5000) {
  const [data, setData] = useState(undefined);
  const [error, setError] = useState(undefined);
  const load = useCallback(() => {
    api(path)
      .then((d) => {
        setData(d);
        setError(undefined);
      })
      .catch((e) => setError(e.message));
  }, [path]);
  useEffect(() => {
    load();
    const t = setInterval(load, everyMs);
    return () => clearInterval(t);
  }, [load, everyMs]);
  return [data, error, load];
}
