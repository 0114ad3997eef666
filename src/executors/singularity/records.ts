import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a worker writes down about each container it runs, so a worker after a crash can find and end it. */
export interface ContainerRecord {
  id: string;
  labels: Record<string, string>;
  /** Relative cgroup path (JobCgroup.path); '' when the job had none. */
  cgroup: string;
  /** The runtime program's pid and its start time (field 22 of /proc/<pid>/stat), 0 before start. */
  pid: number;
  pidStartedAt: string;
  createdAt: number;
}

/** The start time of a process (clock ticks since boot), which tells it from a later one with its pid. */
export async function processStartTime(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  // The command name (field 2) may hold spaces and parentheses: count from the last ")".
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
}

/** One JSON file per container in the runtime's state directory. */
export class ContainerRecords {
  constructor(readonly dir: string) {}

  async write(record: ContainerRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFile(join(this.dir, `${record.id}.json`), JSON.stringify(record));
  }

  async read(id: string): Promise<ContainerRecord | null> {
    const text = await readFile(join(this.dir, `${id}.json`), 'utf8').catch(() => null);
    if (text === null) return null;
    try {
      return JSON.parse(text) as ContainerRecord;
    } catch {
      return null;
    }
  }

  async all(): Promise<ContainerRecord[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const records = await Promise.all(
      names.filter((n) => n.endsWith('.json')).map((n) => this.read(n.slice(0, -5))),
    );
    return records.filter((r): r is ContainerRecord => r !== null);
  }

  async remove(id: string): Promise<void> {
    await rm(join(this.dir, `${id}.json`), { force: true });
  }

  /** "running" while its process is the one that was started, "created" before start, else "exited". */
  static async stateOf(record: ContainerRecord): Promise<string> {
    if (record.pid === 0) return 'created';
    return (await processStartTime(record.pid)) === record.pidStartedAt ? 'running' : 'exited';
  }
}
