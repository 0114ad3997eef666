/** A mistake in how the command was called: printed as one line, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const MAIN_HELP = `stevedore — run container jobs from a Redis-backed queue

Usage: stevedore <command> [options]

Commands:
  worker            take jobs from the queue and run them
  submit            submit a job (spec file or flags), optionally wait for its result
  status <id>       show a job's phase, progress, run and the reruns its retry rules have left
  result <id>       print a finished job's result as JSON (--table: its runs, one row each)
  cancel <id>       cancel a waiting or running job
  logs <id>         print (-f: follow) a job's stdout and stderr, or its events, from any host
  exec <id> -- CMD  run a command in a running job's container (-i stdin, -t terminal)
  shell <id>        an interactive shell in a running job's container
  port-forward <id> [LOCAL:]REMOTE
                    forward a local TCP port to a port inside a running job
  demo              start what is needed, run one real job, print its result
  keygen --id NAME  write an Ed25519 key pair NAME.key / NAME.pub for signed jobs
  health            exit 0 when a worker's /readyz answers 200, else 1 (--http host:port)
  dashboard         serve the web dashboard (--listen host:port, default 127.0.0.1:9465)

Common options (client commands):
  --redis-url URL   Redis (default: $REDIS_URL, else the embedded Redis of a local worker);
                    redis://user:password@host:port for an ACL user, rediss://… for TLS
  --redis-tls-ca FILE, --redis-tls-cert FILE, --redis-tls-key FILE
                    PEM files for rediss:// (default: $STEVEDORE_REDIS_TLS_CA, _CERT, _KEY)
                    Sentinel or Cluster: $REDIS_SENTINELS and $REDIS_SENTINEL_NAME, or
                    $REDIS_CLUSTER_NODES (with a prefix like {stevedore}); see docs/redis.md
  --queue NAME      queue name (default: $STEVEDORE_QUEUE or "stevedore")
  --prefix P        BullMQ key prefix (default: $STEVEDORE_PREFIX or "bull")
  -h, --help        help for a command

Run "stevedore <command> --help" for a command's options.`;

export const WORKER_HELP = `Usage: stevedore worker [options]

Takes container jobs from the queue and runs them. Every option can also be set by its
environment variable. With no Redis URL, uses the state directory's embedded redis-server
(loopback only, a random password kept in the state directory): the one already running, else
it starts one; the last worker to stop stops it. Redis Sentinel: REDIS_SENTINELS and
REDIS_SENTINEL_NAME; Redis Cluster: REDIS_CLUSTER_NODES and a hash-tagged --prefix such as
{stevedore} (docs/redis.md).

  --redis-url URL            REDIS_URL (redis://user:password@host:port, rediss://… for TLS)
  --redis-tls-ca FILE        STEVEDORE_REDIS_TLS_CA: CA (PEM) that signed the rediss:// server's certificate
  --redis-tls-cert FILE      STEVEDORE_REDIS_TLS_CERT: client certificate (PEM), for tls-auth-clients
  --redis-tls-key FILE       STEVEDORE_REDIS_TLS_KEY: its private key (PEM)
  --queue NAME               STEVEDORE_QUEUE (default "stevedore")
  --prefix P                 STEVEDORE_PREFIX (default "bull")
  --concurrency N            STEVEDORE_CONCURRENCY (default: number of cores)
  --runtime docker|podman    STEVEDORE_RUNTIME (default "docker")
  --podman-socket PATH       STEVEDORE_PODMAN_SOCKET (default $XDG_RUNTIME_DIR/podman/podman.sock, else
                             /run/podman/podman.sock; started with podman system service when missing)
  --log-dir DIR              STEVEDORE_LOG_DIR (default <state dir>/logs)
  --state-dir DIR            STEVEDORE_STATE_DIR (default ~/.local/state/stevedore)
  --lock-duration-ms MS      STEVEDORE_LOCK_DURATION_MS (default 30000)
  --shutdown-grace-ms MS     STEVEDORE_SHUTDOWN_GRACE_MS (default 30000)
  --engine-outage-ms MS      STEVEDORE_ENGINE_OUTAGE_MS (default 30000; a dockerd restart may take this long)
  --log-level LEVEL          LOG_LEVEL (default "info")
  --on-shutdown stop|detach  STEVEDORE_ON_SHUTDOWN (default "stop")
  --log-driver NAME          STEVEDORE_LOG_DRIVER (default "local", on podman "k8s-file": keeps output for adoption; "none" is faster, keeps none)
  --netns reuse|fresh        STEVEDORE_NETNS (default "reuse": jobs without network take turns in
                             loopback-only namespaces; "fresh": one new namespace per job)
  --keep-finished N          STEVEDORE_KEEP_FINISHED (default 1000 completed and 1000 failed jobs
                             kept in Redis with their results and live output; a week at most)
  --result-replicas N        STEVEDORE_RESULT_REPLICAS (default 0): replicas that must hold a stored
                             result (Redis WAIT) before its container is removed
  --result-replicas-timeout-ms MS
                             STEVEDORE_RESULT_REPLICAS_TIMEOUT_MS (default 1000): how long to wait for them
  --registry-auth FILE       STEVEDORE_REGISTRY_AUTH (default $DOCKER_CONFIG/config.json, else
                             ~/.docker/config.json): registry credentials, Docker's config.json "auths"
  --pull-timeout-ms MS       STEVEDORE_PULL_TIMEOUT_MS (default 1800000): a whole image pull
  --pull-stall-ms MS         STEVEDORE_PULL_STALL_MS (default 60000): a pull with no byte of progress
  --trusted-keys DIR         STEVEDORE_TRUSTED_KEYS (default unset: no signature required): run only
                             jobs signed by a key whose <id>.pub is in DIR
  --policy FILE              STEVEDORE_POLICY: what jobs may ask for (YAML or JSON; default: no host
                             mounts, no tarballs, network modes default and bridge; see docs/policy.md)
  --http HOST:PORT           STEVEDORE_HTTP (default off): serve /metrics, /healthz and /readyz;
                             a bare port listens on 127.0.0.1, 0.0.0.0:PORT on every address
  --gateway HOST:PORT        STEVEDORE_GATEWAY (default off): serve exec, shell and port-forward into
                             this worker's running jobs (TLS and the advertised address: docs/configuration.md)

SIGTERM or SIGINT: stop taking jobs. Default (stop): running jobs may finish within the grace
period, then are stopped and put back in the queue without spending an attempt. detach (for
rolling restarts): running containers are left running and their jobs put back at once; the next
worker on this host adopts each container instead of running the job again. A second signal
exits at once.`;

export const SUBMIT_HELP = `Usage: stevedore submit [SPEC.json|SPEC.yaml] [options] [-- COMMAND ARGS...]

Builds a job spec from a file and/or flags (flags win), validates it and enqueues it.

  --image IMAGE              image to run
  --image-tarball PATH       docker-save tarball to load the image from
  --pull POLICY              imagePullPolicy: if-not-present, always or never (default: always
                             for a :latest or untagged image, else if-not-present)
  --env NAME=VALUE           environment variable (repeatable)
  --workdir DIR              working directory inside the container
  --mount CPATH=HOSTPATH[:rw]  bind mount, read-only unless :rw (repeatable)
  --vcpus N                  CPU limit
  --ram SIZE                 memory limit: bytes, or 512Mi, 2Gi, ...
  --network                  enable the network (default: none at all)
  --no-init                  run the command as PID 1 (default: under the engine's init)
  --stdin-file PATH          send this file as the container's stdin
  --max-run-time SECONDS     stop the job after this long (result: Cancelled, timeout)
  --stop-grace SECONDS       SIGTERM → SIGKILL grace when stopping (default 10)
  --label KEY=VALUE          label echoed in the result (repeatable)
  --job-id ID                your own job id (idempotent submit)
  --attempts N               tries for infrastructure failures (default 3)
  --priority N               1 = highest
  --delay MS                 wait before running
  --signing-key FILE         sign the job with this Ed25519 key (default: $STEVEDORE_SIGNING_KEY);
                             the key id is the file's base name without .key
  --not-after TIME           signed jobs: no worker takes the job after TIME (ISO 8601; default 24 h)
  --wait                     wait for the result, print it, exit with the container's exit code
  --timeout MS               with --wait: give up after this long`;

export const LOGS_HELP = `Usage: stevedore logs <id> [-f] [--stdout | --stderr | --events]

Prints a job's output from the bounded copy kept in Redis (default: the last 1 MiB of each
stream), from any host: its stdout to stdout and its stderr to stderr, as \`docker logs\` does.
--stdout or --stderr prints only that stream (still to its own fd); --events prints its events
log to stdout. -f follows a running job until it ends; on a finished job it prints everything
and exits. The complete output is in the files on the worker host (see the result's stdout.path).`;

export const KEYGEN_HELP = `Usage: stevedore keygen --id NAME [--out DIR]

Writes an Ed25519 key pair for signed jobs: DIR/NAME.key (PKCS#8 PEM, mode 0600; the producer's,
for --signing-key or STEVEDORE_SIGNING_KEY) and DIR/NAME.pub (SPKI PEM; copy it into each
worker's STEVEDORE_TRUSTED_KEYS directory). DIR defaults to the current directory. Never
overwrites a file; NAME is the key id (letters, digits, ".", "_", "-").`;

export const HEALTH_HELP = `Usage: stevedore health [--http HOST:PORT]

Asks a worker's /readyz (default address: $STEVEDORE_HTTP; 0.0.0.0 is asked on 127.0.0.1) and
exits 0 when it answers 200, 1 when it answers otherwise or not at all, printing its answer (what
is down). For compose health checks and Kubernetes exec probes.`;

export const DASHBOARD_HELP = `Usage: stevedore dashboard [--listen HOST:PORT] [client options]

Serves a web dashboard over the queue's Redis: counts, throughput and workers; the jobs list by
state and reason; each job's timeline, result, attempts, live output and a cancel button.

  --listen HOST:PORT   where to listen (default 127.0.0.1:9465; a bare port is on 127.0.0.1)
  --log-level LEVEL    LOG_LEVEL (default "info")

An address other than loopback needs STEVEDORE_DASHBOARD_TOKEN (16 characters or more); with it
set, every request needs the token: open /?token=TOKEN once (an HttpOnly cookie keeps it) or send
Authorization: Bearer TOKEN. Takes the client options of every client command (see --help).`;

const GATEWAY_OPTIONS = `Through the gateway of the worker running the job (STEVEDORE_GATEWAY on that worker; see
docs/gateway.md). Takes the client options of every client command (see --help), and:

  --signing-key FILE   sign the request with this Ed25519 key (default: $STEVEDORE_SIGNING_KEY),
                       needed when the worker sets STEVEDORE_TRUSTED_KEYS
  --gateway-tls-ca FILE  the CA (PEM) of workers that serve the gateway over TLS
                       (default: $STEVEDORE_GATEWAY_TLS_CA, else Node's built-in CAs)`;

export const EXEC_HELP = `Usage: stevedore exec <id> [options] [--] COMMAND [ARGS...]

Runs COMMAND in the running container of job <id>, from any host that reaches Redis and the
job's worker. stdout and stderr arrive live on this process's stdout and stderr; the command's
exit code becomes this command's. When the session ends without one (the worker stopped, the
job ended, the connection broke) it says so on stderr and exits 255, as it does when the
session does not open (the message says why: the job is not running, its worker serves no
gateway, or the worker refused, and by which check).

  -i, --interactive    send this process's stdin to the command (default: it reads end of file)
  -t, --tty            a terminal: stdout and stderr become one stream, this terminal goes raw
                       and window resizes follow
  -u, --user USER      run as USER (name or uid[:gid]; the worker policy may limit it); default:
                       the job's own user
  -w, --workdir DIR    working directory (absolute); default: the job's
  -e, --env NAME=VALUE a variable for the command (repeatable; on Apptainer a name of letters,
                       digits and _)

Options go before the command; the command starts after -- or at the first word after <id>.

${GATEWAY_OPTIONS}`;

export const SHELL_HELP = `Usage: stevedore shell <id> [options]

An interactive shell in the running container of job <id>: exec -it of /bin/bash where the
image has it, else /bin/sh (the image needs /bin/sh). Exits with the shell's exit code, or 255
when the session ends without one.

${GATEWAY_OPTIONS}`;

export const PORT_FORWARD_HELP = `Usage: stevedore port-forward <id> [LOCAL:]REMOTE [options]

Listens on 127.0.0.1:LOCAL and forwards each connection to port REMOTE inside the running job
<id>; several connections run at once. LOCAL defaults to REMOTE; ":REMOTE" takes a free local
port. Prints "Forwarding 127.0.0.1:LOCAL -> job <id> port REMOTE" once listening, and runs until
SIGINT or SIGTERM (exit 0) or until the job can no longer be reached (it ended, or a worker
refuses: exit 1). A job without network cannot be forwarded to: its loopback is its own.

${GATEWAY_OPTIONS}`;
