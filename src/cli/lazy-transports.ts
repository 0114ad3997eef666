import { createRequire } from 'node:module';

/**
 * dockerode loads its SSH transport (ssh2) and its BuildKit session support (gRPC) when it is
 * first imported, about 20 MB of resident memory that a worker on a local socket never uses.
 * This defers both until something actually reaches for them (DOCKER_HOST=ssh://…, say), so
 * they still work when needed. Must run before dockerode is imported.
 */
const DEFERRED = new Set(['ssh2', '@grpc/grpc-js', '@grpc/proto-loader']);

type Load = (request: string, parent: unknown, isMain: boolean) => unknown;
interface ModuleInternals {
  _load: Load;
}

const require = createRequire(import.meta.url);
const moduleApi = require('node:module') as ModuleInternals;
const original = moduleApi._load;

type Exports = Record<string | symbol, unknown>;

/**
 * A stand-in that loads the real module at the first property read. ssh2's `Client` is read
 * when docker-modem is imported, so it gets a constructor that loads the module when called.
 */
function deferred(request: string, load: () => Exports): unknown {
  return new Proxy(
    {},
    {
      get(_target, property) {
        if (request === 'ssh2' && property === 'Client') {
          return function Client(...args: unknown[]): object {
            return Reflect.construct(load().Client as new (...a: unknown[]) => object, args);
          };
        }
        return load()[property];
      },
    },
  );
}

moduleApi._load = function load(request, parent, isMain) {
  if (!DEFERRED.has(request)) return original.call(this, request, parent, isMain);
  let real: Exports | undefined;
  return deferred(request, () => {
    real ??= original.call(this, request, parent, isMain) as Exports;
    return real;
  });
};
