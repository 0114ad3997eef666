/**
 * The bounds every runtime puts on a spec that names none, or too little, so one spec means the
 * same on each (ExecutorSpec.pidsLimit, ExecutorSpec.ramBytes). Constants beside the contract,
 * which carries no code; why these values: docs/security.md and docs/apptainer.md, "Limits".
 */

/**
 * Processes and threads per container when the spec names no limit: far more than a batch job
 * starts (a JVM with a few hundred threads fits), few enough that a fork bomb stays a small
 * fraction of the host's pid_max (32768 by default on Linux).
 */
export const DEFAULT_PIDS_LIMIT = 4096;

/**
 * The least memory limit a job gets on any runtime; a smaller `ramBytes` is raised to it. Docker
 * 20.10 refuses less than 6 MiB (daemon_unix.go linuxMinMemory); Apptainer's own CLI and starter
 * run in the job's cgroup and peak near 14 MiB before the command starts.
 */
export const MIN_MEMORY_BYTES = 32 * 1024 * 1024;
