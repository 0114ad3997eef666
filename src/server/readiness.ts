import type { WorkerProbe } from '../worker/worker.js';

export interface Readiness {
  ready: boolean;
  /** One line for the body and the log: "ready", or what is down, each with why. */
  text: string;
}

/** /readyz's verdict on a probe; no probe yet means the worker is still starting. */
export function readinessOf(probe: WorkerProbe | null): Readiness {
  if (probe === null) return { ready: false, text: 'not ready: worker: starting' };
  const down = (
    [
      ['redis', probe.redis],
      ['engine', probe.engine],
      ['worker', probe.jobs],
    ] as const
  ).filter(([, why]) => why !== null);
  if (down.length === 0) return { ready: true, text: 'ready' };
  return { ready: false, text: `not ready: ${down.map(([what, why]) => `${what}: ${why}`).join('; ')}` };
}
