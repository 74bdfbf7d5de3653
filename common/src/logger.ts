import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * One JSON line per event on stdout, written asynchronously: pino's default stdout destination
 * writes synchronously, one write(2) per line, which under load put a syscall on every request's
 * path (the access log line; measured in bench/capacity). Lines that pile up while a write is in
 * flight leave together. `flushLogger` on shutdown, and pino's own exit hook, write what is left.
 */
export function createLogger(service: string, level: LevelWithSilent = 'info'): Logger {
  return pino(
    {
      level,
      base: { service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 1, sync: false }),
  );
}

export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    logger.flush((err) => {
      void err;
      resolve();
    });
  });
}
