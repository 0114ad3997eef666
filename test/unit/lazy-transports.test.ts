import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

/** Runs a module script in a fresh node process (the patch is process-wide) and returns its JSON. */
async function probe(script: string): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('deferred dockerode transports', () => {
  it('dockerode loads without ssh2 and gRPC, and they load when first used', async () => {
    const result = await probe(`
      import { createRequire } from 'node:module';
      await import('./src/cli/lazy-transports.ts');
      const { default: Dockerode } = await import('dockerode');
      const require = createRequire(import.meta.url);
      const loaded = () => Object.keys(require.cache).filter((k) => /node_modules\\/(ssh2|@grpc)\\//.test(k)).length;
      const before = loaded();
      new Dockerode();
      const client = new (require('ssh2').Client)();
      const grpcServer = typeof require('@grpc/grpc-js').Server;
      console.log(JSON.stringify({ before, after: loaded(), isClient: typeof client.connect, grpcServer }));
    `);
    expect(result).toEqual({
      before: 0,
      after: expect.any(Number),
      isClient: 'function',
      grpcServer: 'function',
    });
    expect(result.after).toBeGreaterThan(0);
  });
});
