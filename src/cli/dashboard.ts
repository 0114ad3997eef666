import { pino } from 'pino';
import { type DashboardConfig, loadDashboardConfig } from '../config/dashboard.js';
import { processEnv } from '../config/env.js';
import { ConfigError } from '../config/errors.js';
import { startDashboard } from '../dashboard/server.js';
import { DashboardConfigError } from '../dashboard/settings.js';
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
  let settings: DashboardConfig;
  try {
    settings = loadDashboardConfig(processEnv(), { listen: values.listen, logLevel: values['log-level'] });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  const logger = pino({ level: settings.logLevel });
  const client = await clientOptionsFrom(values);
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  try {
    dashboard = await startDashboard({
      listen: settings.listen,
      token: settings.token,
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
