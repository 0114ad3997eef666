import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { execa } from 'execa';
import type { Logger } from 'pino';
// Only the fallback for a runtime opened without the setting; a worker passes its own.
import { DEFAULT_SIF_CONVERT_TIMEOUT_MS } from '../../config/defaults.js';
import { coerceError, ImageUnavailableError, InfrastructureError, PhaseError } from '../../jobs/errors.js';
import { canonicalRef, type ImageRef, nameOf, parseImageRef, requireImageRef } from '../../jobs/image-ref.js';
import type { CacheEviction, ImageIdentity, ImageRequest, LoadedImage } from '../executor.js';
import { RegistryCredentials } from '../registry-auth.js';
import { RUNTIME_PATH } from './args.js';
import type { SingularityBinary } from './binary.js';
import { RegistryAnswerError, registryBase, resolveDigest } from './registry-digest.js';
import type { Eviction, SifCache } from './sif-cache.js';
import { copyTarball, readTarballManifest, tarballDigest } from './tarball.js';

/** What a load found, before it is tied to the request it answers. */
type Found = Omit<LoadedImage, 'request'>;

/** The SIF cache's key of a loaded image: its digest, which every way of loading makes its imageId. */
export function sifKeyOf(image: ImageIdentity): string {
  return image.imageId.replace(/^sha256:/, '');
}

export interface SingularityImagesOptions {
  credentials?: RegistryCredentials;
  /** The local Docker engine images may be taken from (`docker-daemon:`); absent: the default socket. */
  dockerSocket?: string;
  /** A conversion (pull + squashfs) of one image; longer fails the attempt as infra (retried). */
  convertTimeoutMs?: number;
}

/**
 * Makes images available as SIF files by each job's pull policy: what the cache has under the
 * reference, a `docker save` tarball, an image a local Docker engine holds, or a registry. Each
 * is converted once per digest (SifCache) and remembered under its reference.
 */
export class SingularityImages {
  private readonly credentials: RegistryCredentials;
  private readonly docker: Dockerode;

  constructor(
    private readonly bin: SingularityBinary,
    readonly cache: SifCache,
    private readonly options: SingularityImagesOptions = {},
  ) {
    this.credentials = options.credentials ?? RegistryCredentials.none();
    this.docker = new Dockerode({ socketPath: options.dockerSocket ?? '/var/run/docker.sock' });
  }

  /** The image as a SIF in the cache (its path: cache.pathOf(sifKeyOf(loaded))), by the request's pull policy. */
  async ensure(request: ImageRequest, log: Logger): Promise<LoadedImage> {
    const { image, tarballPath, pullPolicy } = request;
    const found = await this.find(request, log);
    return { request: tarballPath ? { image, tarballPath, pullPolicy } : { image, pullPolicy }, ...found };
  }

  private async find(request: ImageRequest, log: Logger): Promise<Found> {
    const ref = requireImageRef(request.image);
    const name = canonicalRef(ref);
    if (request.pullPolicy !== 'always' || ref.digest !== null) {
      const key = await this.cache.lookup(name);
      if (key) return identity(key, 'present', ref.digest ? request.image : null);
    }
    if (request.tarballPath) return this.fromTarball(request.tarballPath, request.image, name, log);
    if (request.pullPolicy === 'never') {
      throw new ImageUnavailableError(
        `image ${request.image} is not present on this host and the job's imagePullPolicy is "never": give the job an imageTarball, or let the worker pull it (imagePullPolicy "if-not-present")`,
      );
    }
    // An image the local engine holds is converted from there, unless the job asks for the registry's now.
    const local =
      request.pullPolicy === 'always'
        ? null
        : await this.docker
            .getImage(request.image)
            .inspect()
            .catch(() => null);
    if (local) return this.fromDaemon(request.image, local.Id, name, log);
    return this.fromRegistry(request, ref, name, log);
  }

  private async fromTarball(path: string, image: string, name: string, log: Logger): Promise<Found> {
    let manifest: Awaited<ReturnType<typeof readTarballManifest>>;
    let key: string;
    try {
      if (!(await stat(path)).isFile()) throw new Error('not a regular file');
      manifest = await readTarballManifest(path);
      key = await tarballDigest(path);
    } catch (error) {
      throw new PhaseError(
        'loading-image',
        `cannot read image tarball ${path}: ${coerceError(error).message}`,
        {
          cause: error,
        },
      );
    }
    const tags = manifest.repoTags.map((t) => {
      const parsed = parseImageRef(t);
      return typeof parsed === 'string' ? t : canonicalRef(parsed);
    });
    if (!tags.includes(name)) {
      throw new ImageUnavailableError(
        `tarball ${path} does not contain ${image} (it holds: ${manifest.repoTags.join(', ') || 'no tagged image'}): give a tarball made by "docker save" of that image`,
      );
    }
    const { evicted } = await this.convert(key, log, async (target, tmp) => {
      // Converted from a private copy whose bytes are the key's (tarball.ts copyTarball).
      let source = join(tmp, 'source.tar');
      try {
        await copyTarball(path, source, key);
      } catch (error) {
        throw new PhaseError(
          'loading-image',
          `cannot load image tarball ${path}: ${coerceError(error).message}`,
          {
            cause: error,
          },
        );
      }
      // Apptainer's docker-archive reader misses members named "./manifest.json": repack without "./".
      if (manifest.dotPrefixed) {
        const unpacked = join(tmp, 'unpacked');
        await mkdir(unpacked);
        await execa('tar', ['-xf', source, '-C', unpacked], {
          env: { PATH: RUNTIME_PATH },
          extendEnv: false,
        });
        source = join(tmp, 'image.tar');
        await execa('sh', ['-c', 'cd "$1" && tar -cf "$2" -- *', 'sh', unpacked, source], {
          env: { PATH: RUNTIME_PATH },
          extendEnv: false,
        });
      }
      await this.build(target, tmp, `docker-archive:${source}`, {});
    });
    await this.cache.remember(name, key);
    return { ...identity(key, 'tarball', null), ...evictions(evicted) };
  }

  private async fromDaemon(image: string, imageId: string, name: string, log: Logger): Promise<Found> {
    const key = imageId.replace(/^sha256:/, '');
    const { evicted } = await this.convert(key, log, (target, tmp) =>
      this.build(target, tmp, `docker-daemon:${image}`, {
        DOCKER_HOST: `unix://${this.options.dockerSocket ?? '/var/run/docker.sock'}`,
      }),
    );
    await this.cache.remember(name, key);
    return { ...identity(key, 'present', null), ...evictions(evicted) };
  }

  private async fromRegistry(
    request: ImageRequest,
    ref: ImageRef,
    name: string,
    log: Logger,
  ): Promise<Found> {
    const credential = this.credentials.forImage(request.image);
    const started = Date.now();
    let digest: string;
    try {
      digest = await resolveDigest(ref, credential, request.signal ?? AbortSignal.timeout(60_000));
    } catch (error) {
      if (error instanceof RegistryAnswerError && error.status >= 400 && error.status < 500) {
        throw new ImageUnavailableError(`cannot pull ${request.image}: ${error.message}`, { cause: error });
      }
      throw new InfrastructureError(
        'loading-image',
        `cannot reach the registry of ${request.image}: ${coerceError(error).message}`,
        {
          cause: error,
        },
      );
    }
    const key = digest.replace(/^sha256:/, '');
    const env: Record<string, string> = {};
    if (credential?.username) {
      env.APPTAINER_DOCKER_USERNAME = credential.username;
      env.APPTAINER_DOCKER_PASSWORD = credential.password ?? '';
      env.SINGULARITY_DOCKER_USERNAME = credential.username;
      env.SINGULARITY_DOCKER_PASSWORD = credential.password ?? '';
    }
    if (registryBase(ref.registry).startsWith('http:')) env.APPTAINER_NOHTTPS = env.SINGULARITY_NOHTTPS = '1';
    log.info({ image: request.image, authenticated: credential !== undefined }, 'pulling image into a SIF');
    const { converted, evicted } = await this.convert(key, log, (target, tmp) =>
      this.build(target, tmp, `docker://${nameOf(name)}@${digest}`, env),
    );
    await this.cache.remember(name, key);
    const size = await stat(this.cache.pathOf(key)).then(
      (s) => s.size,
      () => 0,
    );
    return {
      imageId: `sha256:${key}`,
      imageDigest: `${nameOf(request.image)}@${digest}`,
      source: 'registry',
      pull: { durationMs: Date.now() - started, bytes: size, layers: 0, shared: !converted },
      ...evictions(evicted),
    };
  }

  private async convert(key: string, log: Logger, run: (target: string, tmp: string) => Promise<void>) {
    const done = await this.cache.ensure(key, async (target, tmp) => {
      log.info({ key }, 'converting image to SIF');
      await run(target, tmp);
    });
    for (const e of done.evicted) log.info({ ...e, cap: this.cache.maxBytes }, 'SIF cache evicted an image');
    return done;
  }

  /** `apptainer build` with nothing of the worker's environment but the source's credentials. */
  private async build(
    target: string,
    tmp: string,
    source: string,
    extra: Record<string, string>,
  ): Promise<void> {
    const env = {
      PATH: RUNTIME_PATH,
      HOME: tmp,
      APPTAINER_CACHEDIR: join(tmp, 'cache'),
      APPTAINER_TMPDIR: tmp,
      SINGULARITY_CACHEDIR: join(tmp, 'cache'),
      SINGULARITY_TMPDIR: tmp,
      ...extra,
    };
    const answer = await execa(this.bin.path, ['build', '--force', target, source], {
      env,
      extendEnv: false,
      reject: false,
      timeout: this.options.convertTimeoutMs ?? DEFAULT_SIF_CONVERT_TIMEOUT_MS,
      all: true,
    });
    if (answer.failed) {
      const said = fatalLine(String(answer.all ?? '')) ?? answer.shortMessage ?? 'no message';
      if (answer.timedOut) {
        throw new InfrastructureError(
          'loading-image',
          `converting ${source} to SIF took over ${(this.options.convertTimeoutMs ?? DEFAULT_SIF_CONVERT_TIMEOUT_MS) / 60_000} min (STEVEDORE_SIF_CONVERT_TIMEOUT_MS); the job is retried with backoff, or raise the timeout`,
        );
      }
      const message = `${this.bin.flavour} could not convert ${source} to SIF: ${said}`;
      throw /unauthorized|denied|manifest unknown|not found/i.test(said)
        ? new ImageUnavailableError(message)
        : new PhaseError('loading-image', message);
    }
  }
}

function evictions(evicted: Eviction[]): { evicted?: CacheEviction[] } {
  if (evicted.length === 0) return {};
  return {
    evicted: evicted.map(({ key, ...rest }) => ({ imageId: `sha256:${key}`, ...rest })),
  };
}

function identity(key: string, source: LoadedImage['source'], digestRef: string | null): Found {
  return { imageId: `sha256:${key}`, imageDigest: digestRef, source, pull: null };
}

/** Apptainer's own reason: its last FATAL/ERROR line, without colour codes. */
export function fatalLine(output: string): string | null {
  const lines = output
    .replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '') // ANSI colour codes
    .split('\n')
    .filter((l) => /^(FATAL|ERROR)/.test(l.trim()));
  const last = lines.at(-1);
  return last ? last.replace(/^(FATAL|ERROR):\s*/, '').trim() : null;
}
