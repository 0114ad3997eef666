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
