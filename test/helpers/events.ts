import type Dockerode from 'dockerode';

/** Container "create" events the engine recorded since `sinceMs` for containers with `label`. */
export async function containersCreatedSince(
  docker: Dockerode,
  sinceMs: number,
  label: string,
): Promise<string[]> {
  const stream = (await docker.getEvents({
    since: Math.floor(sinceMs / 1000),
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: { type: ['container'], event: ['create'], label: [label] },
  })) as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as { id: string }).id);
}
