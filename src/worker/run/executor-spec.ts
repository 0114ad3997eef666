import { Readable } from 'node:stream';
import type { ExecutorSpec, OutputSink } from '../../executors/executor.js';
import { JOB_ENV } from '../../jobs/names.js';
import { type JobSpec, stdinBytes } from '../../jobs/spec.js';

/**
 * The executor's view of a job spec, with this run's output streams and the worker's limits.
 * The env is the spec's and the two variables Stevedore adds, which the spec may not set.
 */
export function toExecutorSpec(
  spec: JobSpec,
  stdout: OutputSink,
  stderr: OutputSink,
  limits: { pidsLimit: number },
  run: { jobId: string; attempt: number },
): ExecutorSpec {
  const input = stdinBytes(spec);
  return {
    image: spec.image,
    command: spec.command,
    env: { ...spec.env, [JOB_ENV.attempt]: String(run.attempt), [JOB_ENV.jobId]: run.jobId },
    workingDir: spec.workingDir,
    bindMounts: spec.mounts,
    vcpus: spec.resources.vcpus ?? 0,
    ramBytes: spec.resources.ram ?? 0,
    enableNetwork: spec.network.enabled,
    networkMode: spec.network.mode,
    gpu: spec.resources.gpus
      ? { stack: spec.resources.gpus.stack, deviceCount: spec.resources.gpus.count }
      : undefined,
    init: spec.init,
    pidsLimit: limits.pidsLimit,
    stdin: input ? Readable.from([input]) : undefined,
    stdout,
    stderr,
  };
}

/** What events.log says about the spec: limits and shapes, never env values. */
export function describeSpec(spec: JobSpec): Record<string, unknown> {
  return {
    image: spec.image,
    imageTarball: spec.imageTarball ?? null,
    imagePullPolicy: spec.imagePullPolicy ?? null,
    command: spec.command,
    envNames: Object.keys(spec.env),
    workingDir: spec.workingDir ?? null,
    mounts: Object.entries(spec.mounts).map(([to, m]) => `${m.hostPath}:${to}${m.readOnly ? ':ro' : ''}`),
    vcpus: spec.resources.vcpus ?? null,
    ramBytes: spec.resources.ram ?? null,
    gpus: spec.resources.gpus ?? null,
    network: spec.network,
    maxRunTimeSeconds: spec.maxRunTimeSeconds ?? null,
    timeouts: spec.timeouts ?? null,
    stopGraceSeconds: spec.stopGraceSeconds,
    init: spec.init,
    retry: spec.retry ?? null,
  };
}
