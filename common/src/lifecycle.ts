import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { ConfigError } from './config.ts';
import { flushLogger, type Logger } from './logger.ts';

/**
 * The shutdown sequence every service follows (documented in the README):
 *   1. SIGTERM / SIGINT / launcher gone (IPC disconnect) → readiness turns false;
 *   2. listeners close, in-flight requests and sessions drain, children finish;
 *   3. logs are flushed and the process exits 0 — or 1 if draining took longer than the timeout.
 * A second signal while draining is logged and ignored (never a forced half-shutdown).
 */
export interface ServiceRuntime {
  logger: Logger;
  shutdownTimeoutMs: number;
  stop: (reason: string) => Promise<void>;
}

export function runUntilSignal(runtime: ServiceRuntime): void {
  const { logger } = runtime;
  let stopping = false;

  const shutdown = async (reason: string, exitCode: number): Promise<void> => {
    if (stopping) {
      logger.warn({ reason }, 'already shutting down');
      return;
    }
    stopping = true;
    logger.info({ reason }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: runtime.shutdownTimeoutMs }, 'shutdown timed out, exiting');
      void flushLogger(logger).finally(() => process.exit(1));
    }, runtime.shutdownTimeoutMs);
    timer.unref();
    try {
      await runtime.stop(reason);
      logger.info('stopped');
    } catch (err) {
      exitCode = 1;
      logger.error({ err }, 'error while shutting down');
    }
    await flushLogger(logger);
    process.exit(exitCode);
  };

  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  // Started by `onair up`: when the launcher dies without signalling us, do not linger as an orphan.
  if (process.send) process.on('disconnect', () => void shutdown('launcher gone', 0));
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    void shutdown('uncaught exception', 1);
  });
  // A stray rejected promise is a bug to fix, not a reason to drop every viewer.
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled promise rejection'));
}

/** Turns a configuration error into a clear message and exit code 2 instead of a stack trace. */
export function loadConfigOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

interface ConnectionState {
  activeRequests: number;
}

const tracked = new WeakMap<Server, Map<Socket, ConnectionState>>();

/**
 * Follows each connection's requests so a drain can tell a connection that is truly idle from
 * one still sending a response (Node counts a response as done at end(), while a slow client may
 * still be downloading the buffered rest of a segment).
 */
function trackConnections(server: Server): void {
  if (tracked.has(server)) return;
  const connections = new Map<Socket, ConnectionState>();
  tracked.set(server, connections);
  // An HTTPS server's requests arrive on the TLS socket, which 'secureConnection' hands out ('connection' gives the TCP one).
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) => {
    connections.set(socket, { activeRequests: 0 });
    socket.once('close', () => connections.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const state = connections.get(req.socket);
    if (!state) return;
    state.activeRequests += 1;
    res.once('close', () => {
      state.activeRequests -= 1;
    });
  });
}

/**
 * Stops accepting connections, lets in-flight requests finish (including bytes still buffered for
 * slow clients) and closes keep-alive connections as they go idle; after `timeoutMs` the rest are cut.
 */
export function closeHttpServer(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const connections = tracked.get(server);
    const closeIdle = (): void => {
      if (!connections) {
        server.closeIdleConnections();
        return;
      }
      for (const [socket, state] of connections) {
        if (state.activeRequests === 0 && socket.writableLength === 0) socket.destroy();
      }
    };
    const sweep = setInterval(closeIdle, 50);
    const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
    force.unref();
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(force);
      resolve();
    });
    closeIdle();
  });
}

/** Listens and resolves with the bound port, rejecting (not crashing) on EADDRINUSE and friends. */
export function listen(server: Server, port: number, host: string): Promise<number> {
  trackConnections(server);
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
