import { DOCKER_ENGINE, type EngineTraits } from '../docker/index.js';

/**
 * Podman 4.3's Docker-compatible API, as measured on these machines (docs/pitfalls.md, "Podman"):
 * - every container gets `container=podman` and `TERM=xterm` (libpod's default env; no setting
 *   removes them);
 * - no `oom` event and `State.OOMKilled` stays false after a kernel OOM kill (runc, cgroup v1);
 * - log drivers are `k8s-file`, `journald`, `none` (Docker's `local` is refused); `k8s-file`
 *   keeps output, so an adopting worker replays it;
 * - the events endpoint drops every event when asked for `event=die`: filter by type only;
 * - the wait endpoint answers up to ~300 ms after the `die` event (libpod polls the state);
 * - containers outlive a restart of the service (conmon holds them): live-restore, always;
 * - the API's `Init` is always /usr/libexec/podman/catatonit (containers.conf `init_path` is
 *   read by the CLI only), which exits 1 for a missing command.
 */
export const PODMAN_ENGINE: EngineTraits = {
  ...DOCKER_ENGINE,
  kind: 'podman',
  versionName: 'podman',
  capabilities: {
    adopt: true,
    exec: true,
    addedEnv: ['container', 'TERM'],
    reportsOom: false,
    missingCommandExitCode: 1,
  },
  defaultLogDriver: 'k8s-file',
  filtersEventActions: false,
  exitFromDieEvent: true,
  keepsContainers: 'always',
};
