import { setFlagsFromString } from 'node:v8';

/**
 * A worker is a long-running, I/O-bound daemon. V8's default young generation (16 MiB
 * semi-spaces) keeps ~20 MB of idle RSS that it never needs; 1 MiB semi-spaces cost a few more
 * scavenges under heavy output and bring the idle worker under 80 MB (see BENCHMARKS.md).
 * Set before the heavy modules load (the commands are imported lazily after this).
 */
setFlagsFromString('--max-semi-space-size=1');
