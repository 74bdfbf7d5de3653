import { flushLogger, createLogger } from '../../common/src/logger.ts';
import { loadConfigOrExit, runUntilSignal } from '../../common/src/lifecycle.ts';
import { createMetricsRegistry } from '../../common/src/ops-endpoints.ts';
import { shipperCloseBudgetMs, startRecordShipping } from '../../common/src/record-shipping/index.ts';
import { createLoggerAccessLog } from './access-log.ts';
import { buildProxy } from './app.ts';
import { loadProxyConfig } from './config.ts';

const config = loadConfigOrExit(() => loadProxyConfig(process.env));
const logger = createLogger('proxy', config.logLevel);
const registry = createMetricsRegistry('proxy', config.instance);
// Readiness never depends on the receiver: viewers keep watching while monitoring is down.
const shipper = startRecordShipping(config.records, registry, logger);
const app = buildProxy(config, logger, createLoggerAccessLog(logger, shipper), registry);

runUntilSignal({
  logger,
  shutdownTimeoutMs: config.shutdownTimeoutMs,
  stop: async () => {
    const startedAt = performance.now();
    await app.stop();
    // After the HTTP drain (the last requests have their records), before the log flush.
    await shipper?.close(shipperCloseBudgetMs(config.shutdownTimeoutMs, performance.now() - startedAt));
  },
});

try {
  const port = await app.start();
  logger.info(
    {
      port,
      host: config.host,
      instance: config.instance,
      backends: app.webPool.backends().map((b) => b.url),
      backendsFile: config.backendsFile ?? null,
      monitoring: config.monitoringUrl ?? null,
      adminApi: config.opsToken ? 'enabled' : 'disabled (OPS_TOKEN unset)',
      scheme: config.tls ? 'https' : 'http',
      viewerNetworks: config.viewerAllowCidrs.length > 0 ? config.viewerAllowCidrs : 'everyone',
      frontProxies: config.frontProxies,
      playbackTokens: config.playbackTokenSecret ? 'required for /live/' : 'off',
      limits: config.limits,
    },
    'proxy listening',
  );
} catch (err) {
  logger.fatal({ err, port: config.port, host: config.host }, 'proxy failed to start');
  await shipper?.close(0);
  await flushLogger(logger);
  process.exit(1);
}
