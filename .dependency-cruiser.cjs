/**
 * The import rules of DESIGN.md's layout table, checked by `npm run depcheck` (and so by `npm test`):
 * cli → server/gateway → worker → config → policy/executors → jobs (and cli → dashboard → jobs), no cycles, and each
 * runtime folder on its own behind the contract in src/executors/executor.ts and runtime.ts.
 *
 * src/config sits between the worker and what it drives: its loaders read the environment (only
 * src/config/env.ts touches process.env) and need the contract's runtime kinds, Podman's socket
 * rule and the policy's limits, and they hand values down as options, so nothing below imports
 * them. The one exception is src/config/defaults.ts, constants only, which the executors name for
 * the fallbacks of a runtime opened without settings. The client's half (client.ts and what it
 * imports) stays free of the worker's half, so producers load no executor.
 */

/** The runtime-neutral contract: the executor (executor.ts) and the runtime it runs on (runtime.ts). */
const CONTRACT = '^src/executors/(executor|runtime)\\.ts$';

/** Every runtime folder under src/executors/ (docker/, podman/, singularity/). */
const RUNTIME = '^src/executors/([^/]+)/';
/** Docker's public face: what podman/ (Docker's API on Podman) may build on. */
const DOCKER_FACE = '^src/executors/docker/index\\.ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle makes two modules one concern: split out what both need.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'jobs-imports-only-jobs',
      severity: 'error',
      comment: 'src/jobs is the job contract that producers use as a library: nothing of ours but itself.',
      from: { path: '^src/jobs/' },
      to: { path: '^src/', pathNot: '^src/jobs/' },
    },
    {
      name: 'client-entry-imports-only-jobs',
      severity: 'error',
      comment:
        "src/client.ts is the producers' entry point (`stevedore/client`): it gives src/jobs and nothing that runs containers.",
      from: { path: '^src/client\\.ts$' },
      to: { path: '^src/', pathNot: '^src/jobs/' },
    },
    {
      name: 'contract-imports-only-job-types',
      severity: 'error',
      comment:
        'src/executors/executor.ts and runtime.ts are the runtime-neutral contract: they may name src/jobs types and each other, nothing else of ours.',
      from: { path: CONTRACT },
      to: { path: '^src/', pathNot: ['^src/jobs/', CONTRACT] },
    },
    {
      name: 'contract-imports-jobs-as-types',
      severity: 'error',
      comment:
        'The contract takes only types from src/jobs and from itself (`import type`), so it carries no code.',
      from: { path: CONTRACT },
      to: { path: ['^src/jobs/', CONTRACT], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'runtimes-stay-apart',
      severity: 'error',
      comment: 'A runtime folder never imports another: each stands alone behind the contract.',
      from: { path: RUNTIME, pathNot: '^src/executors/podman/' },
      to: { path: '^src/executors/[^/]+/', pathNot: '^src/executors/$1/' },
    },
    {
      name: 'podman-builds-on-docker-face',
      severity: 'error',
      comment:
        "podman/ is Docker's runtime over Podman's API: it uses docker/index.ts, nothing else of another runtime.",
      from: { path: '^src/executors/podman/' },
      to: { path: '^src/executors/[^/]+/', pathNot: ['^src/executors/podman/', DOCKER_FACE] },
    },
    {
      name: 'runtimes-import-contract-and-jobs',
      severity: 'error',
      comment:
        'A runtime folder implements the contract (executor.ts, runtime.ts) with help from src/jobs, the registry credentials every pulling runtime shares and the bounds every runtime puts on a spec (limits.ts), and uses nothing else of ours (not index.ts).',
      from: { path: RUNTIME },
      to: {
        path: '^src/',
        pathNot: [
          CONTRACT,
          '^src/executors/registry-auth\\.ts$',
          '^src/executors/limits\\.ts$',
          '^src/config/defaults\\.ts$',
          '^src/jobs/',
          '^src/executors/$1/',
          DOCKER_FACE, // podman/ only: the rule above keeps the others from it
        ],
      },
    },
    {
      name: 'config-defaults-is-a-leaf',
      severity: 'error',
      comment:
        'src/config/defaults.ts holds constants that every layer may name: it imports nothing of ours.',
      from: { path: '^src/config/defaults\\.ts$' },
      to: { path: '^src/' },
    },
    {
      name: 'below-config-only-defaults',
      severity: 'error',
      comment:
        'Settings flow down as options: the executors, the policy and the job contract never import a loader (only the constants of src/config/defaults.ts).',
      from: { path: '^src/(executors|policy|jobs)/' },
      to: { path: '^src/config/', pathNot: '^src/config/defaults\\.ts$' },
    },
    {
      name: 'config-below-worker',
      severity: 'error',
      comment: 'The configuration is read by the worker, the HTTP pieces and the CLI; it never imports them.',
      from: { path: '^src/config/' },
      to: { path: '^src/(worker|server|gateway|dashboard|cli)/' },
    },
    {
      name: 'client-config-without-worker',
      severity: 'error',
      comment:
        "A producer reading the client's settings (src/config/client.ts) must not load the executors or the policy: only the worker's settings (src/config/worker.ts) may import them.",
      from: { path: '^src/config/', pathNot: '^src/config/worker\\.ts$' },
      to: { path: ['^src/(executors|policy)/', '^src/config/worker\\.ts$'] },
    },
    {
      name: 'executors-below-worker',
      severity: 'error',
      comment:
        'Executors are driven by the worker and never reach up into it (or into policy, server, gateway, cli).',
      from: { path: '^src/executors/' },
      to: { path: '^src/(worker|policy|server|gateway|dashboard|cli)/' },
    },
    {
      name: 'policy-imports-only-jobs',
      severity: 'error',
      comment: 'src/policy is a pure check of a spec: it sees src/jobs and itself only.',
      from: { path: '^src/policy/' },
      to: { path: '^src/', pathNot: ['^src/policy/', '^src/jobs/'] },
    },
    {
      name: 'worker-below-server-and-cli',
      severity: 'error',
      comment: 'The worker is used by the HTTP pieces and the CLI, never the other way round.',
      from: { path: '^src/worker/' },
      to: { path: '^src/(server|gateway|dashboard|cli)/' },
    },
    {
      name: 'server-gateway-below-cli',
      severity: 'error',
      comment:
        'server/ and gateway/ consume the worker and the executor contract; only the CLI sits above them.',
      from: { path: '^src/(server|gateway)/' },
      to: { path: '^src/(cli|dashboard|worker/(run|output|recovery))/' },
    },
    {
      name: 'dashboard-over-jobs-and-server',
      severity: 'error',
      comment:
        'src/dashboard is a client of the queue: it reads Redis through src/jobs and may use src/server helpers, never the worker or the executors; only the CLI starts it.',
      from: { path: '^src/dashboard/' },
      to: { path: '^src/', pathNot: ['^src/dashboard/', '^src/jobs/', '^src/server/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    // `import type` counts too, so a cycle or a wrong-way type import is caught.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
