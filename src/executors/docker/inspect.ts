import type Dockerode from 'dockerode';
import { PhaseError } from '../../jobs/errors.js';
import type { UsageSample } from '../executor.js';
import { isGone, wrapEngineError } from './errors.js';
import type { ContainerWatch } from './events.js';
import { dockerUsage } from './usage.js';

/** SIGKILL: the only exit an OOM kill of the container's first process can give. */
const EXIT_SIGKILL = 137;

/**
 * Whether the kernel killed the container for memory. The engine's events already tell, unless
 * some were missed or the first process died of SIGKILL (then its `oom` event may trail the
 * `die`, and inspect has the final word).
 */
export async function oomKilledOf(
  container: Dockerode.Container,
  watch: ContainerWatch | undefined,
  exitCode: number | null,
): Promise<boolean> {
  if (watch?.oom) return true;
  if (watch && !watch.gap && watch.exitCode !== null && exitCode !== EXIT_SIGKILL) return false;
  try {
    return (await container.inspect()).State.OOMKilled === true;
  } catch (error) {
    throw wrapEngineError('finalizing', 'cannot inspect the exited container', error);
  }
}

/** Current resource use; null once the container is gone. */
export async function usageOf(container: Dockerode.Container): Promise<UsageSample | null> {
  try {
    return await dockerUsage(container);
  } catch (error) {
    if (isGone(error)) return null;
    throw wrapEngineError('running', 'cannot read container stats', error);
  }
}

/** The container's first process; 0 when it does not run. */
export async function pidOf(container: Dockerode.Container): Promise<number> {
  try {
    const info = await container.inspect();
    return info.State.Running ? info.State.Pid : 0;
  } catch (error) {
    if (isGone(error)) return 0;
    throw wrapEngineError('running', 'cannot inspect the container', error);
  }
}

/** The container's address on its network; rejects when it has none. */
export async function ipAddressOf(container: Dockerode.Container): Promise<string> {
  const info = await container.inspect();
  const address = Object.values(info.NetworkSettings.Networks ?? {})
    .map((n) => n.IPAddress)
    .find((a) => a);
  if (info.HostConfig.NetworkMode === 'none' || !address) {
    throw new PhaseError(
      'running',
      `container ${container.id} has no network address (network disabled or not running)`,
    );
  }
  return address;
}
