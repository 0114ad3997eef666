import { connect } from 'node:net';
import type { FramedSocket } from '../jobs/gateway/framed-socket.js';
import { FRAME } from '../jobs/gateway/frames.js';
import type { GatewayJob } from './target.js';

export interface ForwardEnd {
  bytes: { toJob: number; fromJob: number };
  /** Why it ended, when not by either side closing. */
  end?: string;
}

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Joins the client's connection to a TCP port inside the job: `ready` once the job's side
 * accepted, then raw bytes both ways until either side closes or the job ends.
 */
export async function runForwardSession(
  job: GatewayJob,
  port: number,
  client: FramedSocket,
): Promise<ForwardEnd> {
  const bytes = { toJob: 0, fromJob: 0 };
  let address: string;
  try {
    address = await job.target.ipAddress();
  } catch (error) {
    return refuse(client, `job ${job.jobId} has no address to forward to: ${text(error)}`, bytes);
  }
  const inside = connect({ host: address, port, timeout: CONNECT_TIMEOUT_MS });
  const opened = await new Promise<Error | null>((resolve) => {
    inside.once('connect', () => resolve(null));
    inside.once('timeout', () => resolve(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)));
    inside.once('error', resolve);
  });
  if (opened) {
    inside.destroy();
    return refuse(
      client,
      `nothing accepts connections on port ${port} in job ${job.jobId}: ${opened.message}`,
      bytes,
    );
  }
  inside.setTimeout(0);
  inside.setNoDelay(true);
  client.sendJson(FRAME.ready, {});
  const early = client.goRaw();
  if (early.length > 0) {
    bytes.toJob += early.length;
    inside.write(early);
  }
  const outside = client.socket;
  outside.on('data', (chunk: Buffer) => {
    bytes.toJob += chunk.length;
    if (!inside.write(chunk)) outside.pause();
  });
  inside.on('drain', () => outside.resume());
  inside.on('data', (chunk: Buffer) => {
    bytes.fromJob += chunk.length;
    if (!outside.write(chunk)) inside.pause();
  });
  outside.on('drain', () => inside.resume());
  // Half-closes pass through: an HTTP/1.0 client that ends its request still reads the answer.
  outside.on('end', () => inside.end());
  inside.on('end', () => outside.end());
  outside.resume();
  return new Promise<ForwardEnd>((resolve) => {
    let done = false;
    const finish = (end?: string) => {
      if (done) return;
      done = true;
      job.ended.removeEventListener('abort', onJobEnd);
      inside.destroy();
      outside.destroy();
      resolve(end === undefined ? { bytes } : { bytes, end });
    };
    const onJobEnd = () => finish('the job ended');
    job.ended.addEventListener('abort', onJobEnd, { once: true });
    if (job.ended.aborted) onJobEnd();
    inside.on('error', (error) => finish(`job side: ${error.message}`));
    inside.on('close', () => (outside.writableEnded || outside.destroyed ? finish() : outside.end()));
    outside.on('close', () => finish());
  });
}

function refuse(client: FramedSocket, message: string, bytes: ForwardEnd['bytes']): ForwardEnd {
  client.sendJson(FRAME.refused, { code: 'unreachable', message });
  client.end();
  return { bytes, end: message };
}

const text = (error: unknown): string => (error instanceof Error ? error.message : String(error));
