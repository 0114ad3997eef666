import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import {
  FRAME,
  type Frame,
  FrameReader,
  jsonFrame,
  parseJsonPayload,
} from '../../src/jobs/gateway/frames.js';
import { clientProof, type ExecRequest, type Hello, randomToken } from '../../src/jobs/gateway/handshake.js';
import { parseChallenge } from '../../src/jobs/gateway/messages.js';
import type { GatewayEntry } from '../../src/jobs/gateway/registration.js';

/**
 * An exec session opened by hand, frame by frame over plain TCP, as a client that then
 * misbehaves would: it returns the socket once the worker said `ready`, for a test to break the
 * connection where it likes (half a frame, then a reset).
 */
export async function openRawExec(entry: GatewayEntry, jobId: string, request: ExecRequest): Promise<Socket> {
  const socket = connect({ host: entry.host, port: entry.port });
  // The test breaks this socket on purpose; its own errors are no news.
  socket.on('error', () => undefined);
  const reader = new FrameReader();
  const frames: Frame[] = [];
  let waiting: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    frames.push(...reader.push(chunk).filter((f) => f.type !== FRAME.ping && f.type !== FRAME.pong));
    waiting?.();
  });
  const next = async (): Promise<Frame> => {
    while (frames.length === 0) {
      if (socket.destroyed) throw new Error('the worker closed the connection during the handshake');
      await new Promise<void>((resolve) => {
        waiting = resolve;
        socket.once('close', () => resolve());
      });
    }
    return frames.shift() as Frame;
  };
  await once(socket, 'connect');
  const hello: Hello = { v: 1, jobId, attempt: entry.attempt, op: 'exec', clientNonce: randomToken() };
  socket.write(jsonFrame(FRAME.hello, hello));
  const challengeFrame = await next();
  if (challengeFrame.type !== FRAME.challenge)
    throw new Error(`expected a challenge, got frame 0x${challengeFrame.type.toString(16)}`);
  const challenge = parseChallenge(parseJsonPayload(challengeFrame, 'challenge'));
  const proof = clientProof(entry.secret, hello, challenge.serverNonce, request);
  socket.write(jsonFrame(FRAME.auth, { request, proof }));
  const ready = await next();
  if (ready.type !== FRAME.ready) throw new Error(`expected ready, got frame 0x${ready.type.toString(16)}`);
  return socket;
}
