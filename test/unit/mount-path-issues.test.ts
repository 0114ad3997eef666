import { describe, expect, it } from 'vitest';
import { mountPathProblem } from '../../src/executors/singularity/mounts.js';
import { InvalidSpecError } from '../../src/jobs/errors.js';
import { mountPathIssues } from '../../src/worker/admission.js';

describe('mountPathIssues (a runtime rule for mount paths, passed to admission)', () => {
  it('names the field of each container path and host path the rule refuses', () => {
    const issues = mountPathIssues(
      {
        mounts: {
          '/ok,:/x': { hostPath: '/srv/a,b:c', readOnly: true },
          '/in\r\nx': { hostPath: '/srv/b', readOnly: true },
          '/out': { hostPath: '/srv/c\r\nd', readOnly: false },
        },
      },
      mountPathProblem,
    );
    expect(issues).toEqual([
      {
        path: 'mounts./in\r\nx',
        message: expect.stringMatching(/^container path contains a carriage return/),
      },
      {
        path: 'mounts./out.hostPath',
        message: expect.stringMatching(/^contains a carriage return followed by a line feed/),
      },
    ]);
    expect(new InvalidSpecError(issues).message).toMatch(
      /^invalid job spec \(2 problems\):\n {2}- mounts\.\/in\r\nx: container path/,
    );
  });

  it('finds nothing when the rule takes every path', () => {
    expect(mountPathIssues({ mounts: { '/a': { hostPath: '/b', readOnly: true } } }, () => null)).toEqual([]);
  });
});
