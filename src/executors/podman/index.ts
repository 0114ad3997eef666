/** The Podman runtime's public face, for index.ts. */
export { PODMAN_ENGINE } from './engine.js';
export { openPodmanRuntime, PodmanRuntime, type PodmanRuntimeOptions } from './runtime.js';
export { podmanSocketPath, ROOT_PODMAN_SOCKET } from './socket.js';
