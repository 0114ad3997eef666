import type { ContainerExecutor, LoadedImage, PullProgress } from '../../executors/executor.js';
import { type JobSpec, pullPolicyOf } from '../../jobs/spec.js';
import type { PullResult } from '../observer.js';
import type { EventsLog } from '../output/events-log.js';
import type { StopSources } from './stop.js';

export interface ImageLoadDeps {
  spec: JobSpec;
  executor: ContainerExecutor;
  events: EventsLog;
  stops: StopSources;
  /** Publishes the pull's progress (coalesced with the other progress writes). */
  onPull: (pull: PullProgress) => void;
  /** Told when the image came from a registry (this job's pull or one it waited on) or a pull failed. */
  onPulled?: (result: PullResult, seconds: number) => void;
}

/**
 * The loading-image phase: the image by the job's pull policy, its pull (if any) in events.log,
 * and the loaded image, for create() and the result. A stop while it waits (cancel, timeout,
 * shutdown) ends the wait at once as the stop it is; a pull other jobs wait on goes on for them.
 */
export async function loadRunImage(deps: ImageLoadDeps): Promise<LoadedImage> {
  const { spec, executor, events, stops } = deps;
  const policy = pullPolicyOf(spec);
  let loaded: LoadedImage;
  const began = Date.now();
  try {
    loaded = await executor.loadImage({
      image: spec.image,
      tarballPath: spec.imageTarball,
      pullPolicy: policy,
      onProgress: deps.onPull,
      signal: stops.asked,
    });
  } catch (error) {
    stops.check();
    // Only a registry can fail a pull: a tarball load or `never` fails without one.
    if (!spec.imageTarball && policy !== 'never') deps.onPulled?.('failed', (Date.now() - began) / 1000);
    throw error;
  }
  if (loaded.pull) {
    events.write('pull', { image: spec.image, ...loaded.pull });
    if (loaded.source === 'registry')
      deps.onPulled?.(loaded.pull.shared ? 'shared' : 'pulled', loaded.pull.durationMs / 1000);
  }
  for (const eviction of loaded.evicted ?? []) events.write('image-evicted', { ...eviction });
  events.write('image', {
    image: spec.image,
    pullPolicy: policy,
    source: loaded.source,
    imageId: loaded.imageId,
    imageDigest: loaded.imageDigest,
  });
  return loaded;
}
