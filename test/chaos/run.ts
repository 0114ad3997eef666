import { bundledImageTarball } from '../../src/cli/demo.js';
import { DockerExecutor } from '../../src/executors/docker/docker-executor.js';
import { chaos, summaryTable } from './chaos.js';

/** `npm run chaos`: the long form (about two minutes, loopback only). */
const IMAGE = 'stevedore-test/busybox:1';
const tarball = await bundledImageTarball();
await new DockerExecutor().loadImage({ image: IMAGE, tarballPath: tarball, pullPolicy: 'if-not-present' });
const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000);
console.error(`chaos: seed ${seed} (CHAOS_SEED=${seed} repeats this run)`);
const summary = await chaos({
  jobs: Number(process.env.CHAOS_JOBS ?? 24),
  workers: 2,
  lines: 40,
  killEveryMs: 2_500,
  timeLimitMs: 240_000,
  image: IMAGE,
  imageTarball: tarball,
  seed,
  log: (line) => console.error(`chaos: ${line}`),
});
console.log(summaryTable(summary));
for (const w of summary.wrong) console.log(`- ${w}`);
const ok = summary.wrong.length === 0 && summary.duplicates === 0 && summary.leaks === 0;
console.log(ok ? 'chaos: every job ran once and reported exactly' : 'chaos: FAILED');
process.exit(ok ? 0 : 1);
