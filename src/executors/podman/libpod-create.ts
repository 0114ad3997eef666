import type Dockerode from 'dockerode';
import { coerceError } from '../../jobs/errors.js';
import type { LibpodCreateSpec } from './create-spec.js';

/**
 * The libpod API version asked for: the oldest Podman 4 answers (its `MinAPIVersion`), and
 * Podman 4.3 serves it with 4.3's SpecGenerator.
 */
export const LIBPOD_API = '/v4.0.0/libpod';

/** What libpod's create answers (entities.ContainerCreateResponse). */
interface LibpodCreated {
  Id: string;
  Warnings?: string[];
}

/**
 * `POST /v4.0.0/libpod/containers/create` through dockerode's modem (the client's socket, its
 * error listener, and errors shaped as dockerode's: `statusCode`, `json`). Resolves with the id.
 */
export function libpodCreate(docker: Dockerode, body: LibpodCreateSpec): Promise<string> {
  return new Promise((resolve, reject) => {
    docker.modem.dial(
      {
        path: `${LIBPOD_API}/containers/create`,
        method: 'POST',
        options: { _body: body },
        statusCodes: {
          201: true,
          400: 'bad parameter',
          404: 'no such image',
          409: 'conflict',
          500: 'server error',
        },
      },
      (error, answer) => {
        if (error) return reject(error);
        const id = (answer as Partial<LibpodCreated> | null)?.Id;
        if (typeof id === 'string' && id !== '') resolve(id);
        else reject(new Error(`libpod create answered without a container id: ${JSON.stringify(answer)}`));
      },
    );
  });
}

/** Podman could not find the `init_path` binary on its host (it checks at create). */
export function isInitMissing(error: unknown): boolean {
  return /container-init binary not found on the host/i.test(coerceError(error).message);
}
