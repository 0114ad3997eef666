import { describe, expect, it } from 'vitest';
import { ContainerWatch } from '../../src/executors/docker/events.js';

const event = (Action: string, Attributes: Record<string, string> = {}) => ({
  Type: 'container',
  Action,
  Actor: { ID: 'c1', Attributes },
});

describe('ContainerWatch', () => {
  it('records a kill the executor did not send as foreign, and its own kills not', () => {
    let own = false;
    const watch = new ContainerWatch('c1', () => own);
    own = true;
    watch.take(event('kill', { signal: '9' }));
    expect(watch.foreignSignal).toBeNull();
    own = false;
    watch.take(event('kill', { signal: '15' }));
    watch.take(event('kill', { signal: '9' }));
    expect(watch.foreignSignal).toBe('15');
  });

  it('resolves died() with the exit code from the die event, and records oom', async () => {
    const watch = new ContainerWatch('c1', () => false);
    const died = watch.died(1_000);
    watch.take(event('oom'));
    watch.take(event('die', { exitCode: '137' }));
    await expect(died).resolves.toBe(true);
    expect(watch).toMatchObject({ oom: true, exitCode: 137, gap: false });
    await expect(watch.died(1_000)).resolves.toBe(true);
  });

  it('gives up on die at its timeout, and at once when the stream dropped', async () => {
    const watch = new ContainerWatch('c1', () => false);
    await expect(watch.died(10)).resolves.toBe(false);
    const waiting = watch.died(60_000);
    const loss = watch.nextLoss();
    watch.lose();
    await expect(waiting).resolves.toBe(false);
    await expect(loss).resolves.toBeUndefined();
    expect(watch.gap).toBe(true);
    await expect(watch.died(60_000)).resolves.toBe(false);
  });

  it('resolves exited() with the die event exit code (Podman ends wait() on it), before or after the event', async () => {
    const watch = new ContainerWatch('c1', () => false);
    const early = watch.exited();
    let settled = false;
    void early.then(() => {
      settled = true;
    });
    watch.lose(); // a dropped stream is no exit
    watch.take(event('kill', { signal: '15' }));
    await Promise.resolve();
    expect(settled).toBe(false);
    watch.take(event('die', { exitCode: '3' }));
    await expect(early).resolves.toBe(3);
    await expect(watch.exited()).resolves.toBe(3);
  });
});
