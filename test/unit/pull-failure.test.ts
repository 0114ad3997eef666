import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { pullFailure, pullImage } from '../../src/executors/docker/pull.js';
import type { PullProgress } from '../../src/executors/executor.js';
import { coerceError, ImageUnavailableError, InfrastructureError } from '../../src/jobs/errors.js';

const IMAGE = '127.0.0.1:5000/a:1';

/** Messages the engine (20.10) gives for a pull, with the status dockerode saw (as its error text). */
const IMAGE_PROBLEMS: [string, number | undefined][] = [
  ['manifest for 127.0.0.1:5000/a:nope not found: manifest unknown: manifest unknown', 404],
  ['Head "http://127.0.0.1:5000/v2/a/manifests/1": no basic auth credentials', 500],
  ['Head "http://127.0.0.1:5000/v2/a/manifests/1": unauthorized: authentication required', 500],
  ['unauthorized: authentication required', undefined],
  ['unauthorized: incorrect username or password', 401],
  [
    "pull access denied for x, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
    404,
  ],
  ['invalid reference format', 400],
  ['invalid reference format: repository name must be lowercase', 400],
  ['repository name not known to registry: name unknown', undefined],
  ['no matching manifest for linux/amd64 in the manifest list entries', 404],
];

const INFRA_PROBLEMS: [string, number | undefined][] = [
  ['Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused', 500],
  ['Get "https://reg.example.com/v2/": net/http: TLS handshake timeout', 500],
  ['received unexpected HTTP status: 502 Bad Gateway', 500],
  [
    'error pulling image configuration: Get "http://127.0.0.1:5000/v2/a/blobs/sha256:0f": read tcp 127.0.0.1:40000->127.0.0.1:5000: read: connection reset by peer',
    500,
  ],
  ['Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host', 500],
  [
    'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 127.0.0.53:53: server misbehaving',
    500,
  ],
  ['write /var/lib/docker/tmp/GetImageBlob123456: no space left on device', 500],
  // The engine's own disk, not the registry: a host problem, not the image.
  ['failed to register layer: mkdir /var/lib/docker/overlay2/0f1e: permission denied', 500],
  // Docker Hub's rate limit passes on the registry's 429: waiting helps, so it is retried.
  [
    'toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit',
    429,
  ],
];

/** As dockerode words an engine error: "(HTTP code N) <what> - <the engine's message> ". */
const dockerodeWords = (message: string, code: number): string =>
  `(HTTP code ${code}) ${code === 500 ? 'server error' : 'unexpected'} - ${message} `;

describe('pullFailure: image problems fail at once, the rest is retried', () => {
  it.each(IMAGE_PROBLEMS)('image: %s (HTTP %s)', (message, code) => {
    const error = pullFailure(IMAGE, code ? dockerodeWords(message, code) : message, code);
    expect(error).toBeInstanceOf(ImageUnavailableError);
    expect(error).toMatchObject({ name: 'ImageUnavailableError', phase: 'loading-image' });
    expect(error.message).toContain(`loading-image: cannot pull ${IMAGE}: ${message}.`);
    expect(error.message).not.toContain('HTTP code');
    expect(error.message).toContain('STEVEDORE_REGISTRY_AUTH');
  });

  it.each(INFRA_PROBLEMS)('infra: %s (HTTP %s)', (message, code) => {
    const error = pullFailure(IMAGE, code ? dockerodeWords(message, code) : message, code);
    expect(error).toBeInstanceOf(InfrastructureError);
    expect(error).not.toBeInstanceOf(ImageUnavailableError);
    expect(error).toMatchObject({ name: 'InfrastructureError', phase: 'loading-image' });
    expect(error.message).toBe(
      `loading-image: pull of ${IMAGE} failed: ${message}; the job is retried with backoff`,
    );
  });

  it('an engine 4xx without words it knows is about the image; a 5xx without them is infra', () => {
    expect(pullFailure(IMAGE, 'something odd', 404)).toBeInstanceOf(ImageUnavailableError);
    expect(pullFailure(IMAGE, 'something odd', 500)).toBeInstanceOf(InfrastructureError);
    expect(pullFailure(IMAGE, 'something odd')).toBeInstanceOf(InfrastructureError);
  });
});

/** A dockerode whose createImage answers with `stream`, ended with an error when the pull is aborted. */
function fakeDocker(stream: PassThrough): { docker: Dockerode; calls: { auth: unknown; opts: unknown }[] } {
  const calls: { auth: unknown; opts: unknown }[] = [];
  const docker = {
    createImage: async (auth: unknown, opts: { abortSignal: AbortSignal }) => {
      calls.push({ auth, opts });
      opts.abortSignal.addEventListener(
        'abort',
        () => stream.destroy(new Error('The operation was aborted')),
        {
          once: true,
        },
      );
      return stream;
    },
  } as unknown as Dockerode;
  return { docker, calls };
}

/** The error a promise rejects with; fails the test when it resolves. */
const rejection = (promise: Promise<unknown>): Promise<Error> =>
  promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => coerceError(error),
  );

const send = (stream: PassThrough, message: object): void => {
  stream.write(`${JSON.stringify(message)}\r\n`);
};

describe('pullImage on a fake engine', () => {
  it('sends the credential as X-Registry-Auth, reports progress, and returns bytes, layers and digest', async () => {
    const stream = new PassThrough();
    const { docker, calls } = fakeDocker(stream);
    const seen: PullProgress[] = [];
    const credential = { username: 'ci', password: 'pw', serveraddress: '127.0.0.1:5000' };
    const done = pullImage(docker, IMAGE, {
      credential,
      settings: { timeoutMs: 10_000, stallMs: 5_000 },
      onProgress: (p) => seen.push(p),
    });
    send(stream, { status: 'Pulling from a', id: '1' });
    send(stream, { status: 'Pulling fs layer', id: 'l1', progressDetail: {} });
    // A line split across chunks is read whole.
    const split = JSON.stringify({
      status: 'Downloading',
      id: 'l1',
      progressDetail: { current: 50, total: 100 },
    });
    stream.write(split.slice(0, 20));
    stream.write(`${split.slice(20)}\n`);
    send(stream, { status: 'Pull complete', id: 'l1', progressDetail: {} });
    stream.end(JSON.stringify({ status: `Digest: sha256:${'ab'.repeat(32)}` }));
    const outcome = await done;
    expect(calls[0]?.auth).toBe(credential);
    expect(calls[0]?.opts).toMatchObject({ fromImage: IMAGE });
    expect(outcome).toMatchObject({ bytes: 100, layers: 1, digest: `sha256:${'ab'.repeat(32)}` });
    expect(seen.map((p) => p.bytes)).toEqual([50, 100]);
    expect(seen.at(-1)).toEqual({ image: IMAGE, layersDone: 1, layers: 1, bytes: 100, totalBytes: 100 });
  });

  it('an error line after the 200 is classified by its words', async () => {
    const stream = new PassThrough();
    const { docker } = fakeDocker(stream);
    const done = pullImage(docker, IMAGE, {
      settings: { timeoutMs: 10_000, stallMs: 5_000 },
      onProgress: () => {},
    });
    const message = 'manifest for 127.0.0.1:5000/a:1 not found: manifest unknown: manifest unknown';
    stream.end(`${JSON.stringify({ errorDetail: { message }, error: message })}\n`);
    await expect(done).rejects.toThrow(ImageUnavailableError);
    await expect(done).rejects.toThrow(message);
  });

  it('a registry that sends nothing hits the stall timeout: infra, naming the setting', async () => {
    const stream = new PassThrough();
    const { docker } = fakeDocker(stream);
    const started = Date.now();
    const done = pullImage(docker, IMAGE, {
      settings: { timeoutMs: 10_000, stallMs: 100 },
      onProgress: () => {},
    });
    send(stream, { status: 'Pulling from a', id: '1' });
    const error = await rejection(done);
    expect(error).toBeInstanceOf(InfrastructureError);
    expect(error.message).toMatch(
      /made no progress for 100 ms \(STEVEDORE_PULL_STALL_MS\) after 0 of \? bytes, 0\/0 layers/,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('progress keeps the stall timer off; the whole-pull timeout still ends it', async () => {
    const stream = new PassThrough();
    const { docker } = fakeDocker(stream);
    const done = pullImage(docker, IMAGE, {
      settings: { timeoutMs: 800, stallMs: 300 },
      onProgress: () => {},
    });
    send(stream, { status: 'Pulling fs layer', id: 'l1', progressDetail: {} });
    let current = 0;
    const ticker = setInterval(() => {
      current += 1;
      send(stream, { status: 'Downloading', id: 'l1', progressDetail: { current, total: 1_000 } });
    }, 20);
    const error = await rejection(done).finally(() => clearInterval(ticker));
    expect(error).toBeInstanceOf(InfrastructureError);
    expect(error.message).toMatch(
      /did not finish within 800 ms \(STEVEDORE_PULL_TIMEOUT_MS\) after \d+ of 1000 bytes/,
    );
  });

  it("the caller's abort ends the pull with the abort, not as a classified failure", async () => {
    const stream = new PassThrough();
    const { docker } = fakeDocker(stream);
    const caller = new AbortController();
    const done = pullImage(docker, IMAGE, {
      settings: { timeoutMs: 10_000, stallMs: 5_000 },
      onProgress: () => {},
      signal: caller.signal,
    });
    send(stream, { status: 'Pulling from a', id: '1' });
    caller.abort('no job waits for it');
    const error = await rejection(done);
    expect(error).not.toBeInstanceOf(InfrastructureError);
    expect(error.message).toMatch(/aborted/);
  });
});
