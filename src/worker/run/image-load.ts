import type { ContainerExecutor, ImageIdentity, PullProgress } from '../../executors/executor.js';
import { type JobSpec, pullPolicyOf } from '../../jobs/spec.js';
import type { EventsLog } from '../output/events-log.js';
import type { StopSources } from './stop.js';

export interface ImageLoadDeps {
  spec: JobSpec;
  executor: ContainerExecutor;
  events: EventsLog;
  stops: StopSources;
  /** Publishes the pull's progress (coalesced with the other progress writes). */
  onPull: (pull: PullProgress) => void;
}

/**
 * The loading-image phase: the image by the job's pull policy, its pull (if any) in events.log,
 * and which image it is for the result. A stop while it waits (cancel, timeout, shutdown) ends
 * the wait at once as the stop it is; a pull other jobs wait on goes on for them.
 */
export async function loadRunImage(deps: ImageLoadDeps): Promise<ImageIdentity> {
  const { spec, executor, events, stops } = deps;
  const policy = pullPolicyOf(spec);
  let loaded: Awaited<ReturnType<ContainerExecutor['loadImage']>>;
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
    throw error;
  }
  if (loaded.pull) events.write('pull', { image: spec.image, ...loaded.pull });
  events.write('image', {
    image: spec.image,
    pullPolicy: policy,
    source: loaded.source,
    imageId: loaded.imageId,
    imageDigest: loaded.imageDigest,
  });
  return { imageId: loaded.imageId, imageDigest: loaded.imageDigest };
}
