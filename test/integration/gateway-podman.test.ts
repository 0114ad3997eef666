import { join } from 'node:path';
import { podmanMissing } from '../helpers/podman.js';
import { gatewaySuite } from './gateway-suite.js';

gatewaySuite({
  kind: 'podman',
  unavailable: podmanMissing(),
  // Nothing serves it at first: the worker starts `podman system service` there, as in production.
  env: (dir) => ({ STEVEDORE_PODMAN_SOCKET: join(dir, 'podman.sock') }),
  noTerminal: null,
  noEnv: null,
});
