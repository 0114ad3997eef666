import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { HOLDER_LABEL } from '../src/executors/docker/netns/holders.js';
import { LABELS } from '../src/jobs/names.js';

interface EngineEvent {
  Action?: string;
  Actor?: { Attributes?: Record<string, string> };
}

/**
 * Counts container starts per job id from the engine's own event stream, not from Stevedore's
 * claim: a job whose command ran twice shows two starts here.
 */
export class EngineRunCounter {
  /** Job id → one `worker-id#attempt` (the container's labels) per start. */
  readonly starts = new Map<string, string[]>();
  private stream: Readable | undefined;
  private rest = '';

  constructor(
    private readonly docker: Dockerode,
    private readonly queue: string,
  ) {}

  async open(): Promise<void> {
    this.stream = (await this.docker.getEvents({
      filters: { type: ['container'], event: ['start'], label: [`${LABELS.queue}=${this.queue}`] },
    })) as Readable;
    this.stream.on('data', (chunk: Buffer) => this.take(chunk.toString('utf8')));
  }

  private take(text: string): void {
    const lines = (this.rest + text).split('\n');
    this.rest = lines.pop() ?? '';
    for (const line of lines.filter((l) => l.trim() !== '')) {
      const event = JSON.parse(line) as EngineEvent;
      const labels = event.Actor?.Attributes ?? {};
      const id = labels[LABELS.jobId];
      if (event.Action !== 'start' || !id) continue;
      this.starts.set(id, [
        ...(this.starts.get(id) ?? []),
        `${labels[LABELS.workerId]}#${labels[LABELS.attempt]}`,
      ]);
    }
  }

  close(): void {
    this.stream?.destroy();
  }
}

/** Containers of the queue's jobs that still exist (a finished job's container is removed). */
export async function queueContainers(docker: Dockerode, queue: string): Promise<string[]> {
  const found = await docker.listContainers({ all: true, filters: { label: [`${LABELS.queue}=${queue}`] } });
  return found.map((c) => `${c.Names.join(',')} (${c.State})`);
}

/** Redis's `used_memory` (INFO memory), in bytes. */
export function usedMemory(info: string): number {
  const match = /^used_memory:(\d+)/m.exec(info);
  if (!match) throw new Error('INFO memory: no used_memory line in the answer');
  return Number(match[1]);
}

/**
 * Network-namespace holders of the queue, by the worker id that made them. A worker removes its
 * own when it shuts down; one that is SIGKILLed cannot, and no other worker removes them yet.
 */
export async function queueHolders(docker: Dockerode, queue: string): Promise<Map<string, string[]>> {
  const found = await docker.listContainers({ all: true, filters: { label: [`${HOLDER_LABEL}=${queue}`] } });
  const byWorker = new Map<string, string[]>();
  for (const c of found) {
    const worker = c.Labels[LABELS.workerId] ?? '(no worker id)';
    byWorker.set(worker, [...(byWorker.get(worker) ?? []), c.Id]);
  }
  return byWorker;
}

/** Removes what queueHolders found, after it has been reported; returns how many per worker. */
export async function removeHolders(
  docker: Dockerode,
  holders: Map<string, string[]>,
): Promise<Record<string, number>> {
  for (const ids of holders.values()) {
    await Promise.all(ids.map((id) => docker.getContainer(id).remove({ force: true })));
  }
  return Object.fromEntries([...holders].map(([worker, ids]) => [worker, ids.length]));
}
