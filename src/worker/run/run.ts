import { CommandNotFoundError } from '../../jobs/errors.js';
import type { RunContext } from './context.js';
import { describeSpec, toExecutorSpec } from './executor-spec.js';
import { openRunGateway, whyGatewayCloses } from './gateway.js';
import { loadRunImage } from './image-load.js';
import { checkHostPaths, checkStartedMounts } from './mount-check.js';
import { type RunOutcome, runOutcome } from './outcome.js';
import { openRunParts } from './run-parts.js';
import { StopRequested } from './stop.js';

/**
 * Drives one attempt of a job through the run state machine (DESIGN.md):
 * admitted → loading-image → creating → starting → running → finalizing → done, with
 * `stopping` on cancel, timeout, lost lock or shutdown. Pessimistic: the result is Failed until
 * wait() gives an exit code. Always finalizes; the first error is kept, later ones are logged.
 */
export async function runJob(ctx: RunContext): Promise<RunOutcome> {
  const { spec, executor } = ctx;
  const pins = ctx.pins ?? [];
  const parts = await openRunParts(ctx);
  const { state, output, events, progress, stops, sampler, transition } = parts;

  let closeGateway: ((why: string) => Promise<void>) | undefined;
  try {
    transition('admitted');
    events.write('spec', describeSpec(spec));
    events.write('worker', { ...ctx.worker, jobId: ctx.jobId, attempt: ctx.attempt });
    events.write('limits', { ...ctx.limits });
    await stops.checkDurable();
    if (ctx.adopt && executor.capabilities.adopt) {
      const streams = { stdout: output.stdout, stderr: output.stderr };
      const taken = await executor.adopt(ctx.adopt.containerId, streams, output.kept);
      state.log = state.log.child({ containerId: executor.containerId });
      state.image = taken.image;
      events.write('adopted', { ...ctx.adopt, ...taken });
      if (!taken.replayed && taken.running) output.noteGap('no worker was attached');
      if (!taken.running) stops.noteAdoptedExited();
      else closeGateway = await openRunGateway(ctx, events, state.log);
    } else {
      transition('loading-image');
      const image = await loadRunImage({
        spec,
        executor,
        events,
        stops,
        onPull: (pull) => progress.update('loading-image', state.history, { pull }),
        onPulled: (result, seconds) => ctx.events?.emit('pull-done', { jobId: ctx.jobId, result, seconds }),
      });
      state.image = { imageId: image.imageId, imageDigest: image.imageDigest };
      events.write('runtime', { runtime: await executor.runtime() });
      stops.check();
      transition('creating');
      // The image load took a while: the host paths must still name what admission checked.
      await checkHostPaths(pins, 'creating');
      await executor.create(toExecutorSpec(spec, output.stdout, output.stderr, ctx.limits, ctx), image);
      state.log = state.log.child({ containerId: executor.containerId });
      events.write('created', { containerId: executor.containerId, cgroupId: executor.cgroupId() });
      await stops.checkDurable();
      transition('starting');
      // Again just before the engine binds them, so what is left open is start itself: what got
      // bound is compared right after it, and the container stopped on a difference.
      await checkHostPaths(pins, 'starting');
      await executor.start();
      await checkStartedMounts(executor, pins, events, state.log);
      closeGateway = await openRunGateway(ctx, events, state.log);
    }
    state.startedAt = new Date().toISOString();
    transition('running');
    sampler.start();
    // A stop that arrived while starting is acted on now that there is something to stop.
    stops.actOnPending();
    state.exitCode = await executor.wait(stops.letGo.signal);
    // It exited before a detach or a lost lock could let go of it: the exit code is the answer.
    if (state.stopReason === 'detach' || state.stopReason === 'lost-lock') state.stopReason = null;
    sampler.stop();
    stops.dispose();
    await stops.settled();
    const details = await executor.exitDetails();
    state.oomKilled = details.oomKilled;
    if (details.outputCut) events.write('warning', { message: details.outputCut });
    state.limitsNotApplied = details.notApplied;
    for (const note of details.notApplied) events.write('warning', { message: `limit not applied: ${note}` });
    events.write('exited', { exitCode: state.exitCode, oomKilled: state.oomKilled });
    // The one place the run's final counters are read: after the exit, before close().
    const final = await executor.finalUsage();
    sampler.tracker.addFinal(final);
    if (final.missing) events.write('warning', { message: `usage incomplete: ${final.missing}` });
  } catch (error) {
    if (stops.letGo.signal.aborted) {
      state.log.info({ reason: stops.letGo.signal.reason }, 'let go of the container');
    } else if (error instanceof StopRequested) {
      state.stopReason ??= error.reason;
      events.write('stopped-before-start', { reason: error.reason });
      state.log.info({ reason: error.reason, phase: state.phase }, 'stopped before the container started');
    } else if (error instanceof CommandNotFoundError) {
      state.exitCode = error.exitCode;
      state.keepError(error);
    } else {
      state.log.warn({ err: state.keepError(error), phase: state.phase }, 'run failed');
    }
  } finally {
    stops.dispose();
    sampler.stop();
    await closeGateway?.(whyGatewayCloses(state.stopReason));
    for (const reattached of executor.reattachments()) {
      events.write('engine-reattached', { ...reattached });
      if (reattached.running && !reattached.replayed) output.noteGap('the docker engine was away');
    }
    const { firstError } = state;
    if (firstError) events.write('error', { phase: state.errorPhase, message: firstError.message });
    transition('finalizing');
    await output.closeStreams((error) => {
      state.log.warn({ err: state.keepError(error) }, 'could not finish an output file');
    });
  }

  return runOutcome(ctx, parts);
}
