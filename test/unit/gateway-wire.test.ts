import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  dataFrames,
  encodeFrame,
  FRAME,
  FrameError,
  FrameReader,
  jsonFrame,
  MAX_FRAME_BYTES,
  parseJsonPayload,
} from '../../src/jobs/gateway/frames.js';
import {
  type Auth,
  clientProof,
  type ExecRequest,
  type Hello,
  proofMatches,
  randomToken,
  requestSignatureRefusal,
  signRequest,
  workerProof,
} from '../../src/jobs/gateway/handshake.js';
import { GatewayMessageError, parseAuth, parseHello } from '../../src/jobs/gateway/messages.js';

describe('gateway frames', () => {
  it('reads frames back whole, however the bytes are cut', () => {
    const bytes = Buffer.concat([
      jsonFrame(FRAME.hello, { a: 1 }),
      encodeFrame(FRAME.stdout, Buffer.from([0, 1, 2, 255])),
      encodeFrame(FRAME.stdinEnd),
    ]);
    for (const size of [1, 2, 3, 5, 7, bytes.length]) {
      const reader = new FrameReader();
      const frames = [];
      for (let at = 0; at < bytes.length; at += size)
        frames.push(...reader.push(bytes.subarray(at, at + size)));
      expect(frames.map((f) => [f.type, [...f.payload]])).toEqual([
        [FRAME.hello, [...Buffer.from('{"a":1}')]],
        [FRAME.stdout, [0, 1, 2, 255]],
        [FRAME.stdinEnd, []],
      ]);
    }
  });

  it('cuts large data into frames of at most the limit, byte-exact', () => {
    const data = Buffer.alloc(MAX_FRAME_BYTES * 2 + 5, 7);
    const reader = new FrameReader();
    const frames = [...dataFrames(FRAME.stdout, data)].flatMap((f) => reader.push(f));
    expect(frames.map((f) => f.payload.length)).toEqual([MAX_FRAME_BYTES, MAX_FRAME_BYTES, 5]);
    expect(Buffer.concat(frames.map((f) => f.payload)).equals(data)).toBe(true);
  });

  it('keeps the bytes after the last frame for a forward that goes raw', () => {
    const reader = new FrameReader(FRAME.ready);
    expect(reader.push(Buffer.concat([jsonFrame(FRAME.ready, {}), Buffer.from('GET /')]))).toHaveLength(1);
    expect(reader.push(Buffer.from(' HTTP/1.1'))).toEqual([]);
    expect(reader.rest().toString()).toBe('GET / HTTP/1.1');
  });

  it('refuses a peer that speaks something else', () => {
    expect(() => new FrameReader().push(Buffer.from('HTTP/1.1 400 Bad Request\r\n'))).toThrow(
      /unknown gateway frame type 0x48/,
    );
    const huge = Buffer.from([FRAME.stdout, 0xff, 0xff, 0xff, 0xff]);
    expect(() => new FrameReader().push(huge)).toThrow(FrameError);
    expect(() => parseJsonPayload({ type: FRAME.hello, payload: Buffer.from('[1]') }, 'hello')).toThrow(
      /not a JSON object/,
    );
  });
});

describe('gateway handshake', () => {
  const secret = randomToken();
  const hello: Hello = { v: 1, jobId: 'job-1', attempt: 2, op: 'exec', clientNonce: randomToken() };
  const serverNonce = randomToken();
  const request: ExecRequest = { op: 'exec', command: ['sh', '-c', 'exit 3'], stdin: false };

  it('lets each side check the other knows the secret', () => {
    const proof = workerProof(secret, hello, serverNonce);
    expect(proofMatches(workerProof(secret, hello, serverNonce), proof)).toBe(true);
    expect(proofMatches(workerProof(randomToken(), hello, serverNonce), proof)).toBe(false);
    const client = clientProof(secret, hello, serverNonce, request);
    expect(proofMatches(clientProof(secret, hello, serverNonce, request), client)).toBe(true);
    expect(client).not.toBe(proof);
  });

  it('binds a proof to its attempt, its session and its request', () => {
    const client = clientProof(secret, hello, serverNonce, request);
    const other = [
      clientProof(secret, { ...hello, attempt: 1 }, serverNonce, request),
      clientProof(secret, hello, randomToken(), request),
      clientProof(secret, { ...hello, clientNonce: randomToken() }, serverNonce, request),
      clientProof(secret, hello, serverNonce, { ...request, command: ['sh'] }),
      workerProof(secret, hello, serverNonce),
    ];
    for (const proof of other) expect(proofMatches(client, proof)).toBe(false);
    expect(proofMatches(client, undefined)).toBe(false);
    expect(proofMatches(client, client.slice(1))).toBe(false);
  });

  it('takes a request signed for this session by a trusted key, and nothing else', () => {
    const trusted = generateKeyPairSync('ed25519');
    const stranger = generateKeyPairSync('ed25519');
    const keys = (id: string) => (id === 'ops' ? trusted.publicKey : undefined);
    const auth = (signature?: Auth['signature']): Auth => ({ request, proof: 'x', signature });
    const signed = signRequest(hello, serverNonce, request, { id: 'ops', privateKey: trusted.privateKey });
    expect(requestSignatureRefusal(hello, serverNonce, auth(signed), keys)).toBeNull();
    expect(requestSignatureRefusal(hello, serverNonce, auth(), keys)?.code).toBe('unsigned');
    expect(requestSignatureRefusal(hello, randomToken(), auth(signed), keys)?.code).toBe('bad-signature');
    const forged = signRequest(hello, serverNonce, request, { id: 'ops', privateKey: stranger.privateKey });
    expect(requestSignatureRefusal(hello, serverNonce, auth(forged), keys)?.message).toMatch(
      /does not cover/,
    );
    const unknown = signRequest(hello, serverNonce, request, { id: 'dev', privateKey: stranger.privateKey });
    expect(requestSignatureRefusal(hello, serverNonce, auth(unknown), keys)?.message).toMatch(
      /unknown key "dev"/,
    );
  });

  it('names the field of a malformed frame', () => {
    expect(() => parseHello({ ...hello, attempt: 0 })).toThrow(/gateway hello is malformed: attempt/);
    expect(() => parseHello({ ...hello, clientNonce: 'short' })).toThrow(/clientNonce must be 32 bytes/);
    expect(() => parseAuth({ request: { op: 'forward', port: 70_000 }, proof: 'p' })).toThrow(
      GatewayMessageError,
    );
    expect(() => parseAuth({ request: { ...request, command: [] }, proof: 'p' })).toThrow(
      /request\.command must name a program/,
    );
    expect(parseAuth({ request, proof: 'p' }).request).toEqual(request);
  });
});
