import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { type ExitSettings, OUTPUT_DRAIN_AFTER_INSPECT_MS } from './container-exit.js';
import { DEFAULT_LOG_DRIVER } from './create-options.js';
import type { DockerRunDefaults, DockerRuntime } from './runtime.js';

/** How often wait() asks the engine about the container beside the wait request. */
const DEFAULT_WATCHDOG_INTERVAL_MS = 2_000;
/** How long the engine may stay unreachable (a daemon restart, say) before the run fails as infra. */
const DEFAULT_ENGINE_OUTAGE_MS = 30_000;

export interface DockerExecutorOptions {
  /**
   * The engine with its shared pools and caches (one per worker). Absent: this executor makes
   * one of its own (on `docker`, or the default client) and closes it in close().
   */
  runtime?: DockerRuntime;
  /** The engine client of the executor's own runtime; ignored when `runtime` is given. */
  docker?: Dockerode;
  /** Container name; the engine picks one when absent. */
  name?: string;
  labels?: Record<string, string>;
  logger?: Logger;
  /** How often wait() checks that the daemon still answers. */
  watchdogIntervalMs?: number;
  /** How long the daemon may be unreachable before the run fails; default: the runtime's, else 30 s. */
  engineOutageMs?: number;
  /** How long wait() drains output once the exit code came from inspect (see OUTPUT_DRAIN_AFTER_INSPECT_MS). */
  outputDrainMs?: number;
  /** Default: the runtime's, else "none". */
  logDriver?: string;
  /** GPU selection; default: the runtime's. */
  visibleDevices?: { cuda?: string; amd?: string };
  /** false: this job gets a namespace of its own even when the runtime reuses them. */
  reuseNetns?: boolean;
}

/** The log driver of a job container: the executor's, else the runtime's, else DEFAULT_LOG_DRIVER. */
export function logDriverOf(options: DockerExecutorOptions, defaults: DockerRunDefaults): string {
  return options.logDriver ?? defaults.logDriver ?? DEFAULT_LOG_DRIVER;
}

/** How wait() watches the container: the executor's settings, else the runtime's, else the defaults above. */
export function exitSettings(options: DockerExecutorOptions, defaults: DockerRunDefaults): ExitSettings {
  return {
    watchdogIntervalMs:
      options.watchdogIntervalMs ?? defaults.watchdogIntervalMs ?? DEFAULT_WATCHDOG_INTERVAL_MS,
    engineOutageMs: options.engineOutageMs ?? defaults.engineOutageMs ?? DEFAULT_ENGINE_OUTAGE_MS,
    outputDrainMs: options.outputDrainMs ?? defaults.outputDrainMs ?? OUTPUT_DRAIN_AFTER_INSPECT_MS,
    exitFromDieEvent: defaults.exitFromDieEvent ?? false,
    keepsContainers: defaults.keepsContainers ?? 'if-live-restore',
  };
}
