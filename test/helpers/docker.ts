import Dockerode from 'dockerode';
import { inject } from 'vitest';

/** Every container a test creates carries this label, so the leak check can find it. */
export const TEST_LABEL = 'stevedore.test';
export const TEST_IMAGE = 'stevedore-test/busybox:1';

export function testDocker(): Dockerode {
  return new Dockerode();
}

/** The `docker save` tarball of the test image, built by the global setup. */
export function testImageTarball(): string {
  return inject('imageTarball');
}

/** Labels that mark a container as made by the test named `name`. */
export function testLabels(name: string): Record<string, string> {
  return { [TEST_LABEL]: name };
}

/** Containers of ours (test or stevedore-labelled) that still exist. */
export async function leftoverContainers(
  docker: Dockerode,
  label = TEST_LABEL,
): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [label] } });
}
