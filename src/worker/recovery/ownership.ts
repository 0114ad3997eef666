import type { RuntimeContainer } from '../../executors/index.js';
import { LABELS } from '../../jobs/names.js';

/**
 * Whose a container is, as recovery (reconcile, adoption) decides before touching it.
 *
 * - `ours`: it carries this deployment's id (LABELS.deployment).
 * - `another deployment`: it carries another id: never touched, whatever its job id says here.
 * - `legacy, ours`: made before containers carried the deployment (no label), and this
 *   deployment's Redis names this very container as a run of the job (its progress or a result
 *   records the container's id): treated as ours, so containers running across the upgrade are
 *   still adopted and reconciled.
 * - `legacy, unproven`: no label and nothing here names it. Job ids are not proof (BullMQ's
 *   counter ids are the same in every deployment), so it is left alone: never removed as
 *   "unknown", never adopted. The operator removes such leftovers by hand (docs/names.md).
 */
export type Ownership = 'ours' | 'another deployment' | 'legacy, ours' | 'legacy, unproven';

export function ownershipOf(
  container: Pick<RuntimeContainer, 'id' | 'labels'>,
  deployment: string,
  /** Container ids this deployment's Redis records for the container's job. */
  recorded: ReadonlySet<string>,
): Ownership {
  const label = container.labels[LABELS.deployment];
  if (label !== undefined) return label === deployment ? 'ours' : 'another deployment';
  return recorded.has(container.id) ? 'legacy, ours' : 'legacy, unproven';
}

/** Whether recovery may remove or adopt a container of this ownership. */
export const mayTouch = (ownership: Ownership): boolean =>
  ownership === 'ours' || ownership === 'legacy, ours';

/** The container ids a job's progress and result (as BullMQ keeps them) name: where its runs ran. */
export function recordedContainers(
  job: { progress?: unknown; returnvalue?: unknown } | null | undefined,
): Set<string> {
  const ids = new Set<string>();
  for (const value of [job?.progress, job?.returnvalue]) {
    if (typeof value !== 'object' || value === null) continue;
    const id = (value as { containerId?: unknown }).containerId;
    if (typeof id === 'string' && id !== '') ids.add(id);
  }
  return ids;
}
