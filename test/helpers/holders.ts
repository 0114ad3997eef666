import type Dockerode from 'dockerode';
import { HOLDER_LABEL } from '../../src/executors/docker/netns/holders.js';

/**
 * Removes the namespace holders of the workers on `queue`. A SIGKILLed worker leaves its holders
 * to end by themselves within their lifetime; a test that kills one removes them itself.
 */
export async function removeHoldersOf(docker: Dockerode, queue: string): Promise<void> {
  const holders = await docker.listContainers({
    all: true,
    filters: { label: [`${HOLDER_LABEL}=${queue}`] },
  });
  for (const c of holders) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
}
