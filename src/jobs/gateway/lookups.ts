import { Job, type Queue } from 'bullmq';
import type { RedisConnection } from '../connection.js';
import type { QueueAddress } from '../keys.js';
import type { JobSpecInput } from '../spec.js';
import type { JobStatus } from '../status.js';
import type { GatewayLookups } from './client-gateway.js';
import { readGateway } from './registration.js';

/** The client's gateway lookups on its queue and connection: the job's entry, its status and its network. */
export function queueGatewayLookups(deps: {
  queue: Queue;
  redis: RedisConnection;
  address: QueueAddress;
  status: (jobId: string) => Promise<JobStatus>;
}): GatewayLookups {
  return {
    entry: (id) => readGateway(deps.redis, deps.address, id),
    status: deps.status,
    networkEnabled: async (id) => {
      const job = await Job.fromId<JobSpecInput>(deps.queue, id);
      return job ? job.data.network?.enabled === true : null;
    },
  };
}
