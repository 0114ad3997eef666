import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRuntime, type PodmanRuntime } from '../../src/executors/index.js';
import { findPodman } from '../../src/executors/podman/service.js';
import { coerceError } from '../../src/jobs/errors.js';
import { TEST_LABEL, testLabels } from './docker.js';

/**
 * A Podman service of the test file's own, on a socket in a fresh directory: the worker's path
 * of starting `podman system service` itself. Null, with the reason, when podman cannot be had.
 */
export interface TestPodman {
  runtime: PodmanRuntime;
  socket: string;
  /** Containers with the test label still there (holders aside), then the service stopped. */
  close(): Promise<string[]>;
}

/** Why podman cannot be tested here; null when its program is there. */
export function podmanMissing(): string | null {
  return findPodman('podman', process.env.PATH)
    ? null
    : 'podman is not installed (scripts/setup.sh test installs it)';
}

export async function openTestPodman(
  holderLabel: string,
): Promise<{ podman: TestPodman; reason: null } | { podman: null; reason: string }> {
  const missing = podmanMissing();
  if (missing) return { podman: null, reason: missing };
  const dir = await mkdtemp(join(tmpdir(), 'stevedore-podman-'));
  const socket = join(dir, 'podman.sock');
  try {
    const runtime = (await openRuntime('podman', {
      podman: { socket, searchPath: process.env.PATH, holders: { labels: testLabels(holderLabel) } },
    })) as PodmanRuntime;
    const close = async (): Promise<string[]> => {
      const found = await runtime.docker.listContainers({ all: true, filters: { label: [TEST_LABEL] } });
      const leaked = found.filter((c) => c.Labels[TEST_LABEL] !== holderLabel);
      for (const c of leaked) await runtime.removeContainer(c.Id).catch(() => undefined);
      const left = leaked.map((c) => `${c.Id.slice(0, 12)} (${c.Labels[TEST_LABEL]}, ${c.State})`);
      await runtime.close();
      await rm(dir, { recursive: true, force: true });
      return left;
    };
    return { podman: { runtime, socket, close }, reason: null };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    return {
      podman: null,
      reason: `podman is installed but cannot be used here: ${coerceError(error).message}`,
    };
  }
}
