import { DOCKER_ENGINE, type EngineTraits } from '../docker/index.js';

/**
 * Podman 4.3's Docker-compatible API, as measured on these machines (docs/pitfalls.md, "Podman"):
 * - its create turns structured mounts back into option text and adds `container=podman` and
 *   `TERM=xterm` to the env, so job containers are made through libpod's create instead
 *   (runtime.ts, create-spec.ts), whose env is exactly the job's;
 * - no `oom` event and `State.OOMKilled` stays false after a kernel OOM kill (runc, cgroup v1);
 * - log drivers are `k8s-file`, `journald`, `none` (Docker's `local` is refused); `k8s-file`
 *   keeps output, so an adopting worker replays it;
 * - the events endpoint drops every event when asked for `event=die`: filter by type only;
 * - the wait endpoint answers up to ~300 ms after the `die` event (libpod polls the state);
 * - containers outlive a restart of the service (conmon holds them): live-restore, always;
 * - the compatible API's `Init` is always /usr/libexec/podman/catatonit (containers.conf
 *   `init_path` is read by the CLI only), which exits 1 for a missing command; libpod's create
 *   takes an `init_path`, and jobs get a static tini there when the host has one (init.ts), so
 *   a missing command exits 127 as on Docker (1 without one: PodmanRuntime.init is null).
 */
export const PODMAN_ENGINE: EngineTraits = {
  ...DOCKER_ENGINE,
  kind: 'podman',
  versionName: 'podman',
  capabilities: { adopt: true, exec: true },
  defaultLogDriver: 'k8s-file',
  filtersEventActions: false,
  exitFromDieEvent: true,
  keepsContainers: 'always',
};
