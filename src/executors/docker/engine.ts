import type { RuntimeCapabilities, RuntimeKind } from '../runtime.js';
import { DEFAULT_LOG_DRIVER } from './create-options.js';

/**
 * What one Docker-API engine does differently from another, said once, by the runtime that
 * speaks to it (Docker itself here, Podman's compatible API in ../podman/engine.ts); the code
 * asks these, never the engine's name. Measured against each engine in docs/pitfalls.md.
 */
export interface EngineTraits {
  /** The runtime this engine is, for the worker and the result. */
  kind: RuntimeKind;
  /** First word of runtime(): "docker 20.10.24", "podman 4.3.1". */
  versionName: string;
  /** What the worker may rely on (see RuntimeCapabilities). */
  capabilities: RuntimeCapabilities;
  /** Log driver of job containers when none is configured; one that keeps output, for adoption. */
  defaultLogDriver: string;
  /**
   * Whether the events endpoint filters by action (`event=die`). Where it does not, the
   * subscription asks for every container event and the actions are picked out here.
   */
  filtersEventActions: boolean;
  /**
   * The wait endpoint answers late (Podman polls the container's state), so the `die` event's
   * exit code ends wait() when it comes first.
   */
  exitFromDieEvent: boolean;
  /**
   * Whether containers outlive a restart of the engine: Docker's only with live-restore (asked
   * then); Podman's always (conmon holds each, the API service only serves them).
   */
  keepsContainers: 'if-live-restore' | 'always';
}

export const DOCKER_ENGINE: EngineTraits = {
  kind: 'docker',
  versionName: 'docker',
  capabilities: { adopt: true, exec: true },
  defaultLogDriver: DEFAULT_LOG_DRIVER,
  filtersEventActions: true,
  exitFromDieEvent: false,
  keepsContainers: 'if-live-restore',
};
