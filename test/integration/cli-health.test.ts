import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { stevedore, useCliWorld } from '../helpers/cli.js';
import { freePort } from '../helpers/compose.js';
import { until } from '../helpers/stevedore.js';

describe('stevedore worker --http and stevedore health', () => {
  const world = useCliWorld('stevedore-cli-health-');

  it('a worker process serves /metrics and /readyz where --http says; health exits 0 on it, 1 once it is gone', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const worker = stevedore(['worker', '--http', address, '--concurrency', '3'], { env: world.env });
    try {
      // health reads STEVEDORE_HTTP as the worker does.
      await until(
        async () => (await stevedore(['health'], { env: { STEVEDORE_HTTP: address } })).exitCode === 0,
      );
      const ok = await stevedore(['health', '--http', address]);
      expect(ok).toMatchObject({ exitCode: 0, stdout: `http://${address}/readyz: ready` });
      const metrics = await (await fetch(`http://${address}/metrics`)).text();
      expect(metrics).toMatch(/^stevedore_worker_capacity 3$/m);
      expect(metrics).toMatch(/^stevedore_redis_up 1$/m);
    } finally {
      worker.kill('SIGTERM');
    }
    const exited = await worker;
    expect(exited.exitCode).toBe(0);
    expect(String(exited.stdout)).toContain('"msg":"http endpoint listening"');
    const gone = await stevedore(['health', '--http', address]);
    expect(gone.exitCode).toBe(1);
    expect(gone.stderr).toMatch(new RegExp(`^http://${address}/readyz: cannot ask: connect ECONNREFUSED`));
  });

  it('a worker whose --http address is taken stops at start, saying so', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const r = await stevedore(['worker', '--http', `127.0.0.1:${port}`], { env: world.env });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `^stevedore: STEVEDORE_HTTP: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*; choose another`,
        ),
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('a bad --http is a usage error naming the flag', async () => {
    const r = await stevedore(['worker', '--http', 'localhost:99999'], { env: world.env });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^stevedore: STEVEDORE_HTTP="localhost:99999" is invalid: expected host:port/);
  });
});
