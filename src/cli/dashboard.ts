import { pino } from 'pino';
import { startDashboard } from '../dashboard/server.js';
import { DashboardConfigError, DEFAULT_DASHBOARD_LISTEN, type ListenAddress } from '../dashboard/settings.js';
import { ConfigError, parseHttpAddress } from '../worker/config.js';
import { CLIENT_OPTIONS, clientOptionsFrom, parse } from './options.js';
import { DASHBOARD_HELP, UsageError } from './usage.js';

/** `stevedore dashboard`: serves the web dashboard until SIGTERM or SIGINT. */
export async function dashboardCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...CLIENT_OPTIONS,
    listen: { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values.help) {
    console.log(DASHBOARD_HELP);
    return 0;
  }
  if (positionals.length > 0)
    throw new UsageError(`dashboard takes no arguments, got ${positionals.join(' ')}`);
  let listen: ListenAddress = DEFAULT_DASHBOARD_LISTEN;
  try {
    if (values.listen) listen = parseHttpAddress(values.listen, '--listen');
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  const logger = pino({ level: values['log-level'] ?? process.env.LOG_LEVEL ?? 'info' });
  const client = await clientOptionsFrom(values);
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  try {
    dashboard = await startDashboard({
      listen,
      token: process.env.STEVEDORE_DASHBOARD_TOKEN,
      redis: client.redis,
      tls: client.tls,
      queue: client.queue,
      prefix: client.prefix,
      logger,
    });
  } catch (error) {
    if (error instanceof DashboardConfigError) throw new UsageError(error.message);
    throw error;
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'dashboard: closing');
  await dashboard.close();
  return 0;
}
