/** The ingest process: configuration from the environment, the app, signals and exit codes. */
import { loadConfigOrExit, runUntilSignal } from '../../common/src/lifecycle.ts';
import { createLogger, flushLogger } from '../../common/src/logger.ts';
import { buildIngest } from './app.ts';
import { loadIngestConfig } from './config.ts';

const config = loadConfigOrExit(() => loadIngestConfig());
const logger = createLogger('ingest', config.LOG_LEVEL);
const app = buildIngest(config, logger);

runUntilSignal({ logger, shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS, stop: () => app.close() });

app.start().catch(async (err: unknown) => {
  logger.fatal({ err }, `ingest could not start: ${(err as Error).message}`);
  await flushLogger(logger);
  process.exit(1);
});
