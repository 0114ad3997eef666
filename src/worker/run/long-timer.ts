/** Node's setTimeout holds at most 2^31−1 ms (about 24.8 days); a longer delay fires after 1 ms. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface LongTimer {
  clear(): void;
}

/**
 * Calls `callback` once, `delayMs` from now, however long that is: a chain of timeouts of at
 * most MAX_TIMEOUT_MS each, so a 30-day max run time does not overflow and fire at once.
 */
export function setLongTimeout(callback: () => void, delayMs: number): LongTimer {
  let remaining = Math.max(0, delayMs);
  let handle: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const step = Math.min(remaining, MAX_TIMEOUT_MS);
    remaining -= step;
    handle = setTimeout(() => (remaining > 0 ? arm() : callback()), step);
  };
  arm();
  return { clear: () => clearTimeout(handle) };
}
