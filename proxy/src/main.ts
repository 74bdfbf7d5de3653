import { flushLogger, createLogger } from '../../common/src/logger.ts';
import { loadConfigOrExit, runUntilSignal } from '../../common/src/lifecycle.ts';
import { buildProxy } from './app.ts';
import { loadProxyConfig } from './config.ts';

const config = loadConfigOrExit(() => loadProxyConfig(process.env));
const logger = createLogger('proxy', config.logLevel);
const app = buildProxy(config, logger);

runUntilSignal({ logger, shutdownTimeoutMs: config.shutdownTimeoutMs, stop: () => app.stop() });

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
    },
    'proxy listening',
  );
} catch (err) {
  logger.fatal({ err, port: config.port, host: config.host }, 'proxy failed to start');
  await flushLogger(logger);
  process.exit(1);
}
