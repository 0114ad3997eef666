import type { JobSpec } from '../jobs/spec.js';
import type { Policy } from './policy.js';

/**
 * The job's retry budgets over the policy's caps: `retry.limit` and every rule's own limit over
 * `retry.maxLimit`, `retry.infraLimit` over `retry.maxInfraLimit`. Denied, never lowered, like
 * every other max. A budget the job takes from BullMQ's `attempts` option instead is clamped to
 * the cap when the run is decided (effectiveRetry), so a job of old keeps running.
 */
export function retryDenials(
  spec: Pick<JobSpec, 'retry'>,
  policy: Pick<Policy, 'retry'>,
): { field: string; detail: string }[] {
  const { retry } = spec;
  if (retry === undefined) return [];
  const { maxLimit, maxInfraLimit } = policy.retry;
  const over = (value: number, cap: number, key: string) => `${value} is over the policy's cap ${key} ${cap}`;
  const denials: { field: string; detail: string }[] = [];
  if (retry.limit > maxLimit)
    denials.push({ field: 'retry.limit', detail: over(retry.limit, maxLimit, 'retry.maxLimit') });
  if (retry.infraLimit !== undefined && retry.infraLimit > maxInfraLimit)
    denials.push({
      field: 'retry.infraLimit',
      detail: over(retry.infraLimit, maxInfraLimit, 'retry.maxInfraLimit'),
    });
  retry.rules.forEach((rule, i) => {
    if (rule.limit !== undefined && rule.limit > maxLimit)
      denials.push({
        field: `retry.rules[${i}].limit`,
        detail: over(rule.limit, maxLimit, 'retry.maxLimit'),
      });
  });
  return denials;
}
