// What `ask` and `status` share: finding the daemon's socket and connecting with a clear error.
import { UserError } from "../errors.js";
import { clientSocketPath, SocketClient } from "../transports/socket.js";

export const socketOption = {
  type: "string" as const,
  describe: "the daemon's Unix socket (default: /run/alpaca/alpaca.sock, then $XDG_RUNTIME_DIR, then the state directory)",
};

export async function connectToDaemon(socketPath: string | undefined): Promise<SocketClient> {
  const p = socketPath ?? clientSocketPath();
  try {
    return await SocketClient.connect(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such socket" : code === "ECONNREFUSED" ? "nobody is listening" : code === "EACCES" ? "permission denied" : String(e);
    throw new UserError(`cannot reach the daemon at ${p}: ${why} (is alpaca serve running? --socket says where)`);
  }
}
