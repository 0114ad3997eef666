/**
 * The Docker runtime's public face: what index.ts and a runtime built on Docker's API (podman/)
 * may use. Everything else in this folder is its own business.
 */
export {
  CPU_PERIOD_US,
  type DockerHostFacts,
  type DockerNaming,
  DROPPED_CAPABILITIES,
  holderFiles,
  IMAGE_LABEL,
  jobCpuQuotaUs,
  jobMemoryBytes,
  jobPidsLimit,
  jobWorkingDir,
  rocmDevices,
  splitDeviceList,
  toDockerCreateOptions,
} from './create-options.js';
export { DockerExecutor, type DockerExecutorOptions } from './docker-executor.js';
export { DOCKER_ENGINE, type EngineTraits } from './engine.js';
export type { CgroupLayout, EngineInfo } from './engine-info.js';
export { DockerRuntime, type DockerRuntimeOptions } from './runtime.js';
