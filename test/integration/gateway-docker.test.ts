import { gatewaySuite } from './gateway-suite.js';

gatewaySuite({ kind: 'docker', unavailable: null, env: () => ({}), noTerminal: null, noEnv: null });
