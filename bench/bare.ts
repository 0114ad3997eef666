import type Dockerode from 'dockerode';
import { pool } from './stats.js';

export const BENCH_LABEL = 'stevedore.bench';

/**
 * The bare runtime: what a careful hand-written dockerode loop does for one trivial job:
 * create, attach, start, wait, remove. Returns each job's milliseconds.
 */
export async function bareLoop(
  docker: Dockerode,
  image: string,
  command: string[],
  jobs: number,
  concurrency: number,
): Promise<number[]> {
  const times: number[] = [];
  await pool(jobs, concurrency, async () => {
    const t0 = performance.now();
    const container = await docker.createContainer({
      Image: image,
      Cmd: command,
      AttachStdout: true,
      AttachStderr: true,
      Labels: { [BENCH_LABEL]: 'bare' },
      HostConfig: { NetworkMode: 'none', LogConfig: { Type: 'none', Config: {} } },
    });
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const ended = new Promise((resolve) => stream.on('end', resolve).resume());
    await container.start();
    await container.wait({ condition: 'not-running' });
    await ended;
    await container.remove({ force: true });
    times.push(performance.now() - t0);
  });
  return times;
}
