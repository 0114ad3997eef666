import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type WorkerConfig } from '../../src/config/worker.js';
import { freePort } from '../../src/worker/redis-server.js';
import { cli, dataArgs, Node, until } from './redis-node.js';
import { testPolicy, writePolicy } from './stevedore.js';

/** A master, a replica and three sentinels watching them, all on loopback. */
export class SentinelTopology {
  static readonly NAME = 'stevedore-test';

  private constructor(
    private readonly root: string,
    readonly nodes: Node[],
    readonly sentinels: Node[],
  ) {}

  static async start(): Promise<SentinelTopology> {
    const root = await mkdtemp(join(tmpdir(), 'stevedore-test-sentinel-'));
    const [a, b] = [await freePort(), await freePort()];
    const master = new Node(a, join(root, `n${a}`), dataArgs(a, join(root, `n${a}`)));
    const replica = new Node(b, join(root, `n${b}`), [
      ...dataArgs(b, join(root, `n${b}`)),
      '--replicaof',
      '127.0.0.1',
      String(a),
    ]);
    const sentinels: Node[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = join(root, `s${port}`);
      await mkdir(dir, { recursive: true });
      const conf = join(dir, 'sentinel.conf');
      // Sentinel rewrites its own config file as it learns the topology, so each has one it may write.
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${SentinelTopology.NAME} 127.0.0.1 ${a} 2`,
          `sentinel down-after-milliseconds ${SentinelTopology.NAME} 1000`,
          `sentinel failover-timeout ${SentinelTopology.NAME} 5000`,
          '',
        ].join('\n'),
      );
      sentinels.push(new Node(port, dir, [conf, '--sentinel']));
    }
    const topology = new SentinelTopology(root, [master, replica], sentinels);
    try {
      await master.start();
      await replica.start();
      await until('the replica syncing', async () =>
        (await cli(b, 'INFO', 'replication')).includes('master_link_status:up'),
      );
      for (const sentinel of sentinels) await sentinel.start();
      await until(
        'the sentinels seeing each other',
        async () =>
          (await cli(sentinels[0]?.port ?? 0, 'SENTINEL', 'SENTINELS', SentinelTopology.NAME))
            .split('\n')
            .filter((l) => l === 'name').length >= 2,
        30_000, // hello messages go every 2 s, and a loaded 2-core machine answers slowly
      );
    } catch (error) {
      await topology.close();
      throw error;
    }
    return topology;
  }

  /** `host:port,…` of the sentinels, as REDIS_SENTINELS takes them. */
  get sentinelList(): string {
    return this.sentinels.map((s) => s.address).join(',');
  }

  /** The master's port as the sentinels name it now. */
  async masterPort(): Promise<number> {
    const answer = await cli(
      this.sentinels[0]?.port ?? 0,
      'SENTINEL',
      'GET-MASTER-ADDR-BY-NAME',
      SentinelTopology.NAME,
    );
    return Number(answer.split('\n')[1]);
  }

  /** Kills the master outright and waits until the sentinels have promoted the replica; returns the new master's port. */
  async killMaster(): Promise<number> {
    const old = await this.masterPort();
    await this.nodes.find((n) => n.port === old)?.kill();
    await until('a failover', async () => (await this.masterPort()) !== old, 30_000);
    return this.masterPort();
  }

  async close(): Promise<void> {
    for (const node of [...this.sentinels, ...this.nodes]) await node.kill();
    await rm(this.root, { recursive: true, force: true });
  }
}

/**
 * A test worker's configuration through `topology`'s sentinels: state, logs and the test policy
 * in `dir`, `env` beside the Sentinel settings, a 5 s lock, and `name` in its worker id.
 */
export async function sentinelWorkerConfig(
  topology: SentinelTopology,
  options: { dir: string; queue: string; name: string; env?: Record<string, string> },
): Promise<WorkerConfig> {
  const { dir, queue, name } = options;
  return {
    ...loadConfig({
      REDIS_SENTINELS: topology.sentinelList,
      REDIS_SENTINEL_NAME: SentinelTopology.NAME,
      STEVEDORE_STATE_DIR: dir,
      ...options.env,
    }),
    queue,
    logDir: join(dir, 'logs'),
    lockDurationMs: 5_000,
    workerId: `test-${name}-worker-${process.pid}`,
    policyPath: await writePolicy(dir, testPolicy()),
  };
}
