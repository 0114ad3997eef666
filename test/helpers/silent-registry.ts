import { type AddressInfo, createServer, type Socket } from 'node:net';

/** A loopback server that accepts connections and never answers: a registry hung mid-request. */
export interface SilentRegistry {
  host: string;
  close(): Promise<void>;
}

export async function silentRegistry(): Promise<SilentRegistry> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // the client giving up resets the connection: expected
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${port}`,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
