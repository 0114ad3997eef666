import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of a test registry that holds every connection until `open()`
 * (so a test can line jobs up behind one pull before it starts), and can pace what the registry
 * sends, so a pull lasts long enough on loopback to watch its progress.
 */
export class RegistryProxy {
  private opened = false;
  private readonly held: (() => void)[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: ReturnType<typeof createServer>,
    readonly port: number,
  ) {}

  /** `bytesPerSecond`: how fast the registry's answers reach the engine (unpaced when absent). */
  static async start(
    target: number,
    options: { held?: boolean; bytesPerSecond?: number } = {},
  ): Promise<RegistryProxy> {
    let proxy: RegistryProxy | undefined;
    const server = createServer((client) => {
      const self = proxy as RegistryProxy;
      self.sockets.add(client);
      client.on('close', () => self.sockets.delete(client));
      client.on('error', () => client.destroy());
      client.pause();
      const forward = (): void => {
        const upstream = connect(target, '127.0.0.1');
        self.sockets.add(upstream);
        upstream.on('close', () => self.sockets.delete(upstream));
        // Its end reaches the client through the pipe (or the pacer), with every byte before it.
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream);
        if (options.bytesPerSecond) pace(upstream, client, options.bytesPerSecond);
        else upstream.pipe(client);
        client.resume();
      };
      if (self.opened) forward();
      else self.held.push(forward);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new RegistryProxy(server, (server.address() as AddressInfo).port);
    proxy.opened = options.held !== true;
    return proxy;
  }

  /** "127.0.0.1:PORT": the registry part of references that go through the proxy. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Connections waiting for open(). */
  get waiting(): number {
    return this.held.length;
  }

  /** Lets held connections (and every later one) through. */
  open(): void {
    this.opened = true;
    for (const forward of this.held.splice(0)) forward();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Copies `from` to `to` at about `bytesPerSecond`, in slices every 50 ms. */
function pace(from: Socket, to: Socket, bytesPerSecond: number): void {
  const slice = Math.max(1, Math.round(bytesPerSecond / 20));
  const queue: Buffer[] = [];
  let ended = false;
  const timer = setInterval(() => {
    let budget = slice;
    while (budget > 0 && queue.length > 0) {
      const head = queue[0] as Buffer;
      const piece = head.subarray(0, budget);
      to.write(piece);
      budget -= piece.length;
      if (piece.length === head.length) queue.shift();
      else queue[0] = head.subarray(piece.length);
    }
    if (queue.length === 0 && ended) {
      clearInterval(timer);
      to.end();
    }
  }, 50);
  from.on('data', (chunk: Buffer) => queue.push(chunk));
  from.on('end', () => {
    ended = true;
  });
  from.on('close', () => {
    ended = true;
  });
  to.on('close', () => clearInterval(timer));
}
