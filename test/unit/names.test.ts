import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/jobs/errors.js';
import {
  checkJobId,
  containerLabels,
  containerName,
  decodePathSegment,
  encodePathSegment,
  jobIdProblems,
  LABELS,
  logDirOf,
  parseContainerName,
} from '../../src/jobs/names.js';

const tricky = ['a/b', 'a_b', 'a%2Fb', '.', '..', '...', 'a b', 'é', 'a-b', 'x\\y', '%', '日本', '🙂', '-'];

describe('log directory names', () => {
  it('gives every id its own directory and decodes back to it', () => {
    const segments = tricky.map(encodePathSegment);
    expect(new Set(segments).size).toBe(tricky.length);
    for (const [i, segment] of segments.entries()) {
      expect(segment).toMatch(/^[A-Za-z0-9._%-]+$/);
      expect(segment).not.toBe('.');
      expect(segment).not.toBe('..');
      expect(decodePathSegment(segment)).toBe(tricky[i]);
    }
  });

  it('keeps plain ids as they are and encodes the rest', () => {
    expect(encodePathSegment('job-1.2_x')).toBe('job-1.2_x');
    expect(encodePathSegment('a/b')).toBe('a%2Fb');
    expect(encodePathSegment('..')).toBe('%2E%2E');
    expect(encodePathSegment('é')).toBe('%C3%A9');
  });

  it('puts each attempt under <dir>/<queue>/<job id>/<attempt>', () => {
    expect(logDirOf('/logs', { queue: 'q', jobId: 'a/b', attempt: 2 })).toBe('/logs/q/a%2Fb/2');
    expect(logDirOf('/logs', { queue: '..', jobId: '..', attempt: 1 })).toBe('/logs/%2E%2E/%2E%2E/1');
  });
});

describe('container names', () => {
  const dep = '0123456789ab';
  it('are valid Docker names and never shared by two runs', () => {
    const runs = [
      ...tricky.map((jobId) => ({ queue: 'q', jobId, attempt: 1, started: 1, deployment: dep })),
      { queue: 'a-b', jobId: 'c', attempt: 1, started: 1, deployment: dep },
      { queue: 'a', jobId: 'b-c', attempt: 1, started: 1, deployment: dep },
      { queue: 'q', jobId: 'x-1', attempt: 1, started: 1, deployment: dep },
      { queue: 'q', jobId: 'x', attempt: 11, started: 1, deployment: dep },
      { queue: 'q', jobId: 'x', attempt: 1, started: 1, deployment: '000000000000' },
      { queue: 'q', jobId: `x-1-1.${dep}`, attempt: 1, started: 1, deployment: dep },
    ];
    const names = runs.map(containerName);
    expect(new Set(names).size).toBe(runs.length);
    for (const [i, name] of names.entries()) {
      expect(name).toMatch(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);
      expect(parseContainerName(name)).toEqual(runs[i]);
    }
  });

  it('read as stevedore-<queue>-<job id>-<attempt>-<n>.<deployment>', () => {
    expect(containerName({ queue: 'jobs', jobId: 'build-42', attempt: 2, started: 3, deployment: dep })).toBe(
      `stevedore-jobs-build-42-2-3.${dep}`,
    );
    expect(containerName({ queue: 'my-q', jobId: 'a_b', attempt: 1, started: 1, deployment: dep })).toBe(
      `stevedore-my_2Dq-a_5Fb-1-1.${dep}`,
    );
  });

  it('made before the deployment was in them still parse, with no deployment', () => {
    expect(parseContainerName('stevedore-jobs-build-42-2-3')).toEqual({
      queue: 'jobs',
      jobId: 'build-42',
      attempt: 2,
      started: 3,
      deployment: null,
    });
    expect(parseContainerName(`stevedore-q-x-1-1.${dep}-1-1`)).toMatchObject({
      jobId: `x-1-1.${dep}`,
      deployment: null,
    });
  });

  it('carry the public labels', () => {
    expect(containerLabels({ queue: 'q', jobId: 'j', attempt: 3, workerId: 'w', deployment: dep })).toEqual({
      [LABELS.queue]: 'q',
      [LABELS.jobId]: 'j',
      [LABELS.attempt]: '3',
      [LABELS.workerId]: 'w',
      [LABELS.deployment]: dep,
    });
    expect(LABELS).toMatchObject({
      queue: 'stevedore.queue',
      jobId: 'stevedore.job-id',
      deployment: 'stevedore.deployment',
    });
  });
});

describe('job ids', () => {
  it('refuses what BullMQ or the log directory cannot take', () => {
    expect(jobIdProblems('')).toEqual(['must not be empty']);
    expect(jobIdProblems('a:b:c')).toEqual(['must not contain ":"']);
    expect(jobIdProblems('123')).toEqual(['must not be all digits']);
    expect(jobIdProblems('x'.repeat(201))).toEqual(['must be at most 200 characters']);
    expect(jobIdProblems('/'.repeat(100))[0]).toMatch(/too long once encoded/);
    expect(jobIdProblems('build-42')).toEqual([]);
    expect(() => checkJobId('a:b')).toThrow(ValidationError);
  });

  it("accepts BullMQ's own counter ids on a taken job, not digit ids it would never make", () => {
    expect(jobIdProblems('17', 'queued')).toEqual([]);
    expect(jobIdProblems('007', 'queued')).toEqual(['must not be all digits unless BullMQ made it']);
    expect(jobIdProblems('a:b:c', 'queued')).toEqual(['must not contain ":"']);
  });
});
