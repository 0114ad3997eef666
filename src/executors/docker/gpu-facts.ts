import { readdir, stat } from 'node:fs/promises';
import type { ExecutorSpec } from '../executor.js';
import type { DockerHostFacts } from './create-options.js';

/** What the create options need to know about this host's GPUs: the worker's selection, and for ROCm the device nodes. */
export async function gatherGpuFacts(
  spec: ExecutorSpec,
  visible: { cuda?: string; amd?: string } | undefined,
): Promise<DockerHostFacts> {
  const facts: DockerHostFacts = { cudaVisibleDevices: visible?.cuda, amdVisibleDevices: visible?.amd };
  if (spec.gpu?.stack !== 'rocm') return facts;
  const names = (await readdir('/dev/dri').catch(() => [] as string[])).filter((n) =>
    n.startsWith('renderD'),
  );
  facts.renderDevices = await Promise.all(
    names.sort().map(async (n) => ({ path: `/dev/dri/${n}`, gid: (await stat(`/dev/dri/${n}`)).gid })),
  );
  facts.kfdGid = await stat('/dev/kfd').then(
    (s) => s.gid,
    () => undefined,
  );
  return facts;
}
