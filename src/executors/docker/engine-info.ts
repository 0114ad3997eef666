/** How the engine lays out cgroups (its /info `CgroupVersion` and `CgroupDriver`). */
export interface CgroupLayout {
  version: 1 | 2;
  driver: string;
}

/**
 * What a runtime keeps of its engine's /info. DockerRuntime.engineInfo() asks once and shares
 * the answer among its readers: engineId() (host name and data root), dataPaths() (the data
 * root) and the per-job cgroups (the layout), so a worker's start makes one call, not three.
 */
export interface EngineInfo {
  /** The engine's host name (`Name`); '' when it gives none. */
  hostName: string;
  /** Where it keeps its data (`DockerRootDir`; Podman's graph root); '' when it gives none. */
  dataRoot: string;
  cgroups: CgroupLayout;
  /** Whether the engine runs rootless, when its answer says (Podman's libpod/info); absent: not said. */
  rootless?: boolean;
}

/** The fields of Docker's /info that are read (@types/dockerode gives the answer no type). */
export interface DockerInfoFields {
  Name?: unknown;
  DockerRootDir?: unknown;
  CgroupVersion?: unknown;
  CgroupDriver?: unknown;
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/** Docker's /info answer as the runtime keeps it; a field it lacks is '' (cgroups: v1, cgroupfs). */
export function engineInfoOf(info: DockerInfoFields): EngineInfo {
  return {
    hostName: text(info.Name),
    dataRoot: text(info.DockerRootDir),
    cgroups: {
      version: info.CgroupVersion === '2' ? 2 : 1,
      driver: typeof info.CgroupDriver === 'string' ? info.CgroupDriver : 'cgroupfs',
    },
  };
}
