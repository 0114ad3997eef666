import { request } from 'node:http';
import { processEnv } from '../config/env.js';
import { ConfigError } from '../config/errors.js';
import { type HttpAddress, parseHttpAddress } from '../config/http-address.js';
import { settingReader } from '../config/settings.js';
import { parse } from './options.js';
import { HEALTH_HELP, UsageError } from './usage.js';

/** A worker's /readyz answers within a second (its probes' own bound); this bounds one that hangs. */
const HEALTH_TIMEOUT_MS = 3_000;

/** A listener on every address is asked on loopback. */
function targetOf(listen: HttpAddress): HttpAddress {
  if (listen.host === '0.0.0.0') return { ...listen, host: '127.0.0.1' };
  if (listen.host === '::') return { ...listen, host: '::1' };
  return listen;
}

/** GET /readyz: its status and first line, or why it could not be asked. */
function askReadyz(target: HttpAddress): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const req = request(
      { host: target.host, port: target.port, path: '/readyz', timeout: HEALTH_TIMEOUT_MS },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: body.trim() }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${HEALTH_TIMEOUT_MS} ms`)));
    req.on('error', (error) => resolve({ status: 0, text: `cannot ask: ${error.message}` }));
    req.end();
  });
}

/** `stevedore health`: exit 0 when the worker's /readyz answers 200, else 1 (compose and Kubernetes probes). */
export async function healthCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { http: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    console.log(HEALTH_HELP);
    return 0;
  }
  const value = values.http ?? settingReader(processEnv())('STEVEDORE_HTTP');
  if (!value) throw new UsageError("health needs the worker's address: --http host:port or STEVEDORE_HTTP");
  let listen: HttpAddress;
  try {
    listen = parseHttpAddress(value, values.http ? '--http' : 'STEVEDORE_HTTP');
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  const target = targetOf(listen);
  const { status, text } = await askReadyz(target);
  const where = `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}/readyz`;
  if (status === 200) {
    console.log(`${where}: ${text}`);
    return 0;
  }
  console.error(`${where}: ${status ? `${status} ` : ''}${text}`);
  return 1;
}
