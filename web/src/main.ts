import { loadConfigOrExit, runUntilSignal } from '../../common/src/lifecycle.ts';
import { createLogger, flushLogger } from '../../common/src/logger.ts';
import { createMetricsRegistry } from '../../common/src/ops-endpoints.ts';
import { shipperCloseBudgetMs, startRecordShipping } from '../../common/src/record-shipping/index.ts';
import { createPinoAccessLog } from './access-log.ts';
import { loadWebConfig } from './config.ts';
import { createWebServer } from './web-server.ts';

const config = loadConfigOrExit(() => loadWebConfig());
const logger = createLogger('web', config.logLevel);
const registry = createMetricsRegistry('web', config.instance);
// Readiness never depends on the receiver: viewers keep watching while monitoring is down.
const shipper = startRecordShipping(config.records, registry, logger);
const web = await createWebServer(config, logger, createPinoAccessLog(logger, shipper), registry);
runUntilSignal({
  logger,
  shutdownTimeoutMs: config.shutdownTimeoutMs,
  stop: async () => {
    const startedAt = performance.now();
    await web.drain();
    // After the HTTP drain (the last requests have their records), before the log flush.
    await shipper?.close(shipperCloseBudgetMs(config.shutdownTimeoutMs, performance.now() - startedAt));
  },
});
try {
  const port = await web.listen();
  logger.info({ port, mediaDir: config.mediaDir }, 'web listening');
} catch (err) {
  logger.fatal({ err, port: config.port, host: config.host }, 'cannot listen');
  await shipper?.close(0);
  await flushLogger(logger);
  process.exit(1);
}
