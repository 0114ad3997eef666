/**
 * What the running test has made that the per-test leak check must look for afterwards: the
 * queues it minted and whether a worker of it ran on Podman. Test files run one at a time in
 * their own process (vitest.config.ts), so what is recorded here is the current file's.
 */

let counter = 0;
const minted: string[] = [];
let podmanNotes = 0;

/** A fresh queue name per test, so tests never share a queue. Worker containers are found by the leak check through it. */
export function testQueue(): string {
  counter += 1;
  const queue = `test-${process.pid}-${Date.now().toString(36)}-${counter}`;
  minted.push(queue);
  return queue;
}

/** Called when a test worker is configured for Podman, so the leak check also asks Podman. */
export function notePodman(): void {
  podmanNotes += 1;
}

/** A point in the test's life; `since` gives what was made after it. */
export interface ScopeMark {
  readonly queues: number;
  readonly podmanNotes: number;
}

export function markScope(): ScopeMark {
  return { queues: minted.length, podmanNotes };
}

export function scopeSince(mark: ScopeMark): { queues: string[]; podman: boolean } {
  return { queues: minted.slice(mark.queues), podman: podmanNotes > mark.podmanNotes };
}
