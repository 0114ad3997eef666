/**
 * Defaults of settings that the layers below the configuration (the executors) also fall back on
 * when an embedder or a test opens a runtime without them. Constants only: this file imports
 * nothing, so every layer may name it (.dependency-cruiser.cjs). The loaders pass the values on
 * as options; these are not read as settings anywhere else.
 */

/** A whole image pull may take this long: large ML images over a slow link take many minutes. */
export const DEFAULT_PULL_TIMEOUT_MS = 30 * 60_000;

/**
 * A pull may go this long without a byte of progress (kubelet's old image pull progress
 * deadline): a registry that hangs is given up on and the attempt retried.
 */
export const DEFAULT_PULL_STALL_MS = 60_000;

/** Apptainer's conversion of one image to SIF (pull + squashfs); longer fails the attempt as infra (retried). */
export const DEFAULT_SIF_CONVERT_TIMEOUT_MS = 30 * 60_000;

/** Cap of the SIF cache: a few dozen typical job images. */
export const DEFAULT_SIF_CACHE_BYTES = 20 * 1024 ** 3;

/** BullMQ's job lock: a dead worker's job is taken up again after it. */
export const DEFAULT_LOCK_DURATION_MS = 30_000;

/** On SIGTERM/SIGINT, the time running jobs get before they are stopped and requeued. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;

/** How long the Docker daemon may be away (a restart) before a running job fails as infra. */
export const DEFAULT_ENGINE_OUTAGE_MS = 30_000;

/**
 * How long every worker on an engine must be silent (no presence heartbeat) before that host
 * counts as dead and its jobs run on another engine: the presence staleness limit.
 */
export const DEFAULT_HOST_DEAD_MS = 30_000;
/** The shortest allowed: two presence heartbeats, so one late heartbeat never declares a host dead. */
export const MIN_HOST_DEAD_MS = 10_000;

/**
 * With STEVEDORE_RESULT_REPLICAS set, how long a worker waits for replicas to take a result: a
 * replica on the same network answers in a millisecond; BullMQ's fetching waits behind it.
 */
export const DEFAULT_RESULT_REPLICAS_TIMEOUT_MS = 1_000;
