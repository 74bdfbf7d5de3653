import { loadConfigOrExit, runUntilSignal } from '../../common/src/lifecycle.ts';
import { createLogger, flushLogger } from '../../common/src/logger.ts';
import { loadWebConfig } from './config.ts';
import { createWebServer } from './web-server.ts';

const config = loadConfigOrExit(() => loadWebConfig());
const logger = createLogger('web', config.logLevel);
const web = await createWebServer(config, logger);
runUntilSignal({ logger, shutdownTimeoutMs: config.shutdownTimeoutMs, stop: () => web.drain() });
try {
  const port = await web.listen();
  logger.info({ port, mediaDir: config.mediaDir }, 'web listening');
} catch (err) {
  logger.fatal({ err, port: config.port, host: config.host }, 'cannot listen');
  await flushLogger(logger);
  process.exit(1);
}
