import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { TEST_IMAGE, testDocker, testImageTarball, testLabels } from './docker.js';
import type { HostConfig } from './gateway-host.js';

const SCRIPT = join(import.meta.dirname, 'gateway-host.ts');
/** A container start on a loaded machine (an image load, Apptainer's SIF build) may take this long. */
const READY_MS = 120_000;

export interface GatewayHost {
  port: number;
  containerId: string;
  /** What the host printed on stderr so far: its audit lines. */
  stderr(): string;
  /** SIGTERM: the container is removed, the entry deleted. */
  stop(): Promise<void>;
  /** SIGKILL, as a worker dying; then removes the container it leaves (Docker and Podman). */
  kill(): Promise<void>;
}

/**
 * Starts test/helpers/gateway-host.ts in a process of its own: one job's container on a real
 * runtime, its gateway served and registered in Redis, as a worker with the gateway on does.
 */
export async function startGatewayHost(
  options: Pick<
    HostConfig,
    'runtime' | 'redisUrl' | 'queue' | 'jobId' | 'network' | 'command' | 'tls' | 'keepalive'
  > & {
    singularityBin?: string;
    testName: string;
  },
): Promise<GatewayHost> {
  const config: HostConfig = {
    runtime: options.runtime,
    singularityBin: options.singularityBin,
    redisUrl: options.redisUrl,
    queue: options.queue,
    jobId: options.jobId,
    network: options.network,
    command: options.command,
    image: TEST_IMAGE,
    imageTarball: testImageTarball(),
    label: testLabels(options.testName.slice(0, 200)),
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.keepalive ? { keepalive: options.keepalive } : {}),
  };
  const child: ResultPromise = execa(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(config)], {
    reject: false,
    buffer: false,
    stdin: 'ignore',
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const ready = await new Promise<{ port: number; containerId: string }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`gateway host not ready in time: ${stderr}`)), READY_MS);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { port: number; containerId: string });
      }
    });
    void child.then((result) => {
      clearTimeout(timer);
      reject(
        new Error(`gateway host exited (${result.exitCode ?? result.signal}) before it was ready: ${stderr}`),
      );
    });
  });
  return {
    ...ready,
    stderr: () => stderr,
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await child;
      if (options.runtime === 'docker') {
        await testDocker()
          .getContainer(ready.containerId)
          .remove({ force: true })
          .catch(() => undefined);
      }
    },
  };
}
