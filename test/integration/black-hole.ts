/**
 * A black hole: a TCP server on 127.0.0.1 that accepts connections and never answers, the way a
 * dependency behaves when it hangs (or a firewall drops its packets). Pointed at by
 * FIRESTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST, STORAGE_EMULATOR_HOST or VERTEX_AI_EMULATOR_HOST,
 * it shows whether a client call is bounded in time.
 */
import { createServer, type Socket } from 'node:net';

/** A running black hole. */
export interface BlackHole {
  /** `127.0.0.1:port`, the form of the `*_EMULATOR_HOST` variables. */
  readonly host: string;
  /** `http://127.0.0.1:port`, the form of STORAGE_EMULATOR_HOST. */
  readonly url: string;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** Starts a black hole on a free loopback port. */
export async function startBlackHole(): Promise<BlackHole> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    // Read and drop whatever arrives, so the client's writes never block: it waits for an answer.
    socket.resume();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('the black hole has no address');
  const host = `127.0.0.1:${address.port}`;
  return {
    host,
    url: `http://${host}`,
    accepted: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
