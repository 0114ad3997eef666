import type { RunPhase } from '../../jobs/progress.js';
import { timeoutField, timeoutsOf } from '../../jobs/timeouts.js';
import type { RunContext } from './context.js';
import { RunLedger } from './ledger.js';
import { ProgressPublisher } from './progress.js';
import { RunOutput } from './run-output.js';
import { StopSources } from './stop.js';
import { DEFAULT_USAGE_TIMING, UsageSampler } from './usage-tracker.js';

/** The pieces of one run, made from its context and wired to each other. */
export interface RunParts {
  /** What the run has learned so far (phase, exit, stop reason, first error). */
  state: RunLedger;
  /** stdout, stderr and events.log, with their live copies. */
  output: RunOutput;
  events: RunOutput['events'];
  progress: ProgressPublisher;
  /** Cancel, timeouts, lost lock and shutdown, each acted on in the phase it arrives in. */
  stops: StopSources;
  /** Resource use, sampled while the container runs. */
  sampler: UsageSampler;
  /** Enters the next phase: the ledger, the phase's metric, events.log, the stop sources, the log, progress. */
  transition: (next: RunPhase) => void;
}

/** Opens the run's output and makes its ledger, progress, stop sources and usage sampler. */
export async function openRunParts(ctx: RunContext): Promise<RunParts> {
  const { spec, executor } = ctx;
  const state = new RunLedger(ctx.enqueuedAt, ctx.logger);
  const output = await RunOutput.open(
    ctx.outputDir,
    ctx.openLive,
    ctx.adopt !== undefined,
    ctx.limits.maxOutputBytes,
  );
  const { events } = output;
  const progress = new ProgressPublisher(
    ctx.publish,
    {
      attempt: ctx.attempt,
      worker: ctx.worker.id,
      engine: ctx.engine,
      containerId: () => executor.containerId,
    },
    () => state.log,
  );
  const transition = (next: RunPhase): void => {
    const left = state.marks.at(-1);
    state.enter(next);
    if (left && next !== left.phase) {
      const seconds = (Date.now() - left.at) / 1000;
      ctx.events?.emit('phase-ended', { jobId: ctx.jobId, phase: left.phase, seconds });
    }
    events.write(next);
    stops.entered(next);
    state.log.debug({ phase: next }, 'phase');
    progress.update(next, state.history);
  };
  const stops = new StopSources({
    signal: ctx.stop,
    isCancelled: ctx.isCancelled,
    timeouts: timeoutsOf(spec),
    timeoutField: (name) => timeoutField(name, spec),
    lastOutputAt: () => Math.max(output.stdout.lastBytesAt, output.stderr.lastBytesAt),
    graceMs: Math.round(spec.stopGraceSeconds * 1000),
    executor,
    state,
    events,
    transition,
  });
  const sampler = new UsageSampler(() => executor.usage(), ctx.usageTiming ?? DEFAULT_USAGE_TIMING, {
    sampled: (usage, warning, reading) => {
      if (warning) {
        events.write('warning', { message: warning });
        state.log.warn({ usage: reading }, warning);
      }
      if (state.phase === 'running') progress.update('running', state.history, { usage: usage ?? undefined });
    },
    failed: (error) => state.log.debug({ err: error }, 'usage sample failed'),
  });
  return { state, output, events, progress, stops, sampler, transition };
}
