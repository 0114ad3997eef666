import type { Logger } from 'pino';
import type { RunContext } from './context.js';
import type { RunLedger } from './ledger.js';
import type { RunOutput } from './run-output.js';

/** The job's gateway, once its container runs; a gateway that cannot open is a warning, never the run's end. */
export async function openRunGateway(
  ctx: RunContext,
  events: RunOutput['events'],
  log: Logger,
): Promise<((why: string) => Promise<void>) | undefined> {
  if (!ctx.openGateway) return undefined;
  try {
    return await ctx.openGateway((event, details) => events.write(event, details));
  } catch (error) {
    const message = `the job's gateway did not open (exec and port-forward cannot reach it): ${error instanceof Error ? error.message : String(error)}`;
    events.write('warning', { message });
    log.warn({ err: error }, message);
    return undefined;
  }
}

/** Why open exec sessions end, as their client is told. */
export function whyGatewayCloses(stopReason: RunLedger['stopReason']): string {
  switch (stopReason) {
    case null:
      return 'its container exited';
    case 'detach':
      return 'this worker let go of it to shut down; the next worker adopts it, exec again then';
    case 'lost-lock':
      return 'this worker lost its lock on it; exec again once another worker has it';
    default:
      return `its run was stopped: ${stopReason}`;
  }
}
