import { watch } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import type Dockerode from 'dockerode';
import { LABELS } from '../../src/jobs/names.js';

/** What a runtime made and loaded while it was watched: container ids, and images that changed. */
export interface EngineActivity {
  created: string[];
  loaded: string[];
}

export interface EngineWatch {
  stop(): Promise<EngineActivity>;
}

async function imageList(docker: Dockerode): Promise<Set<string>> {
  const images = await docker.listImages();
  return new Set(images.map((i) => `${i.Id} ${[...(i.RepoTags ?? [])].sort().join(',')}`));
}

/**
 * Watches a Docker-API engine (Docker, Podman's service) for containers created for `queue`, and
 * compares its images before and after. The label is matched here rather than by the engine's
 * filter, which Podman does not apply to every field.
 */
export async function dockerApiWatch(docker: Dockerode, queue: string): Promise<EngineWatch> {
  const imagesBefore = await imageList(docker);
  const stream = (await docker.getEvents({ filters: { type: ['container'] } })) as NodeJS.ReadableStream & {
    destroy(): void;
  };
  const created: string[] = [];
  let buffered = '';
  stream.on('error', () => undefined); // destroyed at stop(); a broken stream shows as missing events
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines.filter((l) => l.trim())) {
      const event = JSON.parse(line) as {
        Action?: string;
        status?: string;
        id?: string;
        Actor?: { ID?: string; Attributes?: Record<string, string> };
      };
      const action = event.Action ?? event.status;
      if (action === 'create' && event.Actor?.Attributes?.[LABELS.queue] === queue) {
        created.push(event.Actor?.ID ?? event.id ?? '?');
      }
    }
  });
  return {
    stop: async () => {
      // Let events the engine already emitted arrive.
      await new Promise((r) => setTimeout(r, 300));
      stream.destroy();
      const after = await imageList(docker);
      const loaded = [...after].filter((i) => !imagesBefore.has(i));
      return { created, loaded };
    },
  };
}

async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true }).catch(() => [] as string[])).sort();
}

/**
 * Apptainer has no engine to ask: a container is a record file the worker writes before it runs
 * anything, and an image is a SIF in the cache. Watches the one and compares the other.
 */
export async function singularityWatch(recordsDir: string, sifCache: string): Promise<EngineWatch> {
  await mkdir(recordsDir, { recursive: true, mode: 0o700 });
  const cacheBefore = await listing(sifCache);
  const created: string[] = [];
  const watcher = watch(recordsDir, (_event, name) => {
    if (name && !created.includes(name)) created.push(name);
  });
  watcher.on('error', () => undefined); // closed at stop()
  return {
    stop: async () => {
      await new Promise((r) => setTimeout(r, 300));
      watcher.close();
      const after = await listing(sifCache);
      return { created, loaded: after.filter((f) => !cacheBefore.includes(f)) };
    },
  };
}
