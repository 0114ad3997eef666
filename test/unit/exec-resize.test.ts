import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { resizeExec } from '../../src/executors/docker/exec-stream.js';

/** dockerode's exec.resize() answers as its modem does: any code but 200 is an error carrying statusCode. */
function execAnswering(statusCode: number): { exec: Dockerode.Exec; sizes: unknown[] } {
  const sizes: unknown[] = [];
  const exec = {
    resize: async (size: unknown) => {
      sizes.push(size);
      if (statusCode !== 200)
        throw Object.assign(new Error(`(HTTP code ${statusCode}) unexpected - `), { statusCode });
    },
  } as unknown as Dockerode.Exec;
  return { exec, sizes };
}

describe('resizeExec', () => {
  it("takes Podman 4.3's 201 Created as the resize done, like Docker's 200", async () => {
    for (const code of [200, 201]) {
      const { exec, sizes } = execAnswering(code);
      await expect(resizeExec(exec, { cols: 120, rows: 40 })).resolves.toBeUndefined();
      expect(sizes).toEqual([{ h: 40, w: 120 }]);
    }
  });

  it('still fails on a real refusal (the exec is gone)', async () => {
    await expect(resizeExec(execAnswering(404).exec, { cols: 1, rows: 1 })).rejects.toThrow(/HTTP code 404/);
  });
});
