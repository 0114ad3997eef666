import type Dockerode from 'dockerode';

/**
 * Starts watching the engine for container "create" events of containers carrying every one of
 * `labels` ("key=value"); `stop()` returns the ids seen. Live, because the engine keeps only its
 * last 256 events for later queries.
 */
export async function watchCreates(
  docker: Dockerode,
  labels: string[],
): Promise<{ stop: () => Promise<string[]> }> {
  const stream = (await docker.getEvents({
    filters: { type: ['container'], event: ['create'], label: labels },
  })) as NodeJS.ReadableStream & { destroy(): void };
  const ids: string[] = [];
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) ids.push((JSON.parse(line) as { id: string }).id);
  });
  return {
    stop: async () => {
      // Let events already emitted by the engine arrive.
      await new Promise((r) => setTimeout(r, 200));
      stream.destroy();
      return ids;
    },
  };
}

/**
 * Starts watching container `id` for its end; `removed` resolves once the engine destroyed it,
 * with the exit code its `die` event carried (so a process that ended by itself, 0, is told apart
 * from one killed for removal, 137). Rejects after `timeoutMs`.
 */
export async function watchEnd(
  docker: Dockerode,
  id: string,
  timeoutMs: number,
): Promise<{ removed: Promise<{ exitCode: string | undefined }> }> {
  const stream = (await docker.getEvents({
    filters: { type: ['container'], container: [id], event: ['die', 'destroy'] },
  })) as NodeJS.ReadableStream & { destroy(): void };
  const removed = new Promise<{ exitCode: string | undefined }>((resolve, reject) => {
    let exitCode: string | undefined;
    let buffered = '';
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new Error(`container ${id.slice(0, 12)} was not removed within ${timeoutMs} ms`));
    }, timeoutMs);
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.trim())) {
        const event = JSON.parse(line) as { Action: string; Actor?: { Attributes?: Record<string, string> } };
        if (event.Action === 'die') exitCode = event.Actor?.Attributes?.exitCode;
        if (event.Action === 'destroy') {
          clearTimeout(timer);
          stream.destroy();
          resolve({ exitCode });
        }
      }
    });
  });
  return { removed };
}
