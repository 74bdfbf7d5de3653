import { closeHttpServer, listen, loadConfigOrExit, runUntilSignal } from '../../common/src/lifecycle.ts';
import { createLogger, flushLogger } from '../../common/src/logger.ts';
import { createMetricsRegistry } from '../../common/src/ops-endpoints.ts';
import { OverviewBuilder, type Overview } from './analytics/overview.ts';
import { loadMonitoringConfig } from './config.ts';
import { MonitoringServer } from './http/monitoring-server.ts';
import { createMonitoringMetrics } from './metrics.ts';
import { AckAfterStoreServer } from './receiver/ack-after-store-server.ts';
import { RecordIntake } from './receiver/record-intake.ts';
import { createAccessStore } from './store-factory.ts';
import { DuckDbAccessStore } from './store/duckdb-store.ts';

const config = loadConfigOrExit(() => loadMonitoringConfig());
const logger = createLogger('monitoring', config.LOG_LEVEL);
const registry = createMetricsRegistry('monitoring', config.INSTANCE);
const store = createAccessStore(config, logger);
const metrics = createMonitoringMetrics(registry, store instanceof DuckDbAccessStore ? () => store.memoryBytes() : null);
const intake = new RecordIntake(store, metrics, logger);
const receiver =
  config.FLUENT_RECEIVER === 'on'
    ? new AckAfterStoreServer({ listenOptions: { host: config.FLUENT_RECEIVER_HOST, port: config.FLUENT_RECEIVER_PORT } }, intake.accept, logger)
    : null;
const builder = new OverviewBuilder({
  store,
  mediaDir: config.MEDIA_DIR,
  windowMs: config.VIEWER_WINDOW_MS,
  proxyUrl: config.PROXY_URL,
  ingestUrl: config.INGEST_URL,
  opsToken: config.OPS_TOKEN,
  logger,
});

let stopping = false;
let storeOpen = false;
let storeUp = false;
let latest: Overview | null = null;
let building: Promise<Overview> | null = null;
let lastStoreErrorLog = 0;

/** The newest overview, rebuilt when older than one refresh period (one build at a time). */
function overview(): Promise<Overview> {
  if (latest && Date.now() - Date.parse(latest.generatedAt) < config.REFRESH_MS) return Promise.resolve(latest);
  building ??= builder
    .build()
    .then((o) => {
      latest = o;
      storeUp = true;
      metrics.pipelineLagSeconds.set(o.pipeline.lagMs === null ? 0 : o.pipeline.lagMs / 1000);
      metrics.viewers.reset();
      for (const s of o.streams) {
        metrics.viewers.set({ stream: s.stream, by: 'ip' }, s.viewers.ips);
        metrics.viewers.set({ stream: s.stream, by: 'session' }, s.viewers.sessions);
      }
      return o;
    })
    .catch((err: unknown) => {
      storeUp = false;
      if (Date.now() - lastStoreErrorLog > 10_000) {
        lastStoreErrorLog = Date.now();
        logger.error({ err }, 'cannot build the overview: store unavailable');
      }
      if (latest) return { ...latest, pipeline: { ...latest.pipeline, storeUp: false } };
      throw err;
    })
    .finally(() => {
      building = null;
    });
  return building;
}

const http = new MonitoringServer({
  opsToken: config.OPS_TOKEN,
  store,
  registry,
  metrics,
  logger,
  overview,
  readiness: () => (stopping ? 'shutting down' : !storeOpen ? 'store not open yet' : !storeUp ? 'store not answering' : null),
});

const timers: NodeJS.Timeout[] = [];

async function openStore(): Promise<void> {
  // Elasticsearch may come up after us: keep trying, not ready meanwhile.
  for (let attempt = 1; !stopping; attempt++) {
    try {
      await store.open();
      storeOpen = true;
      storeUp = true;
      return;
    } catch (err) {
      logger.error({ err, attempt }, 'cannot open the store, retrying');
      await new Promise((r) => setTimeout(r, Math.min(1000 * attempt, 10_000)));
    }
  }
}

async function start(): Promise<void> {
  await http.loadAssets();
  const port = await listen(http.server, config.MONITORING_PORT, config.MONITORING_HOST);
  await openStore();
  if (receiver) await receiver.listen();
  timers.push(
    setInterval(() => {
      void overview().then((o) => http.broadcast(o), () => undefined);
    }, config.REFRESH_MS),
  );
  const retain = (): void => {
    store
      .applyRetention(new Date(Date.now() - config.RETENTION_DAYS * 24 * 3600_000))
      .then((n) => n > 0 && logger.info({ deleted: n, days: config.RETENTION_DAYS }, 'old access records deleted'))
      .catch((err: unknown) => logger.error({ err }, 'retention failed'));
  };
  retain();
  timers.push(setInterval(retain, 3600_000));
  logger.info({ port, store: config.STORE, fluentReceiver: receiver ? `${config.FLUENT_RECEIVER_HOST}:${config.FLUENT_RECEIVER_PORT}` : 'off', windowMs: config.VIEWER_WINDOW_MS }, 'monitoring listening');
}

runUntilSignal({
  logger,
  shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
  stop: async () => {
    stopping = true;
    for (const t of timers) clearInterval(t);
    // Stop taking records, store what was received (unacknowledged ones will be resent anyway).
    if (receiver) await receiver.close().catch(() => undefined);
    await intake.flush().catch(() => undefined);
    http.closeLiveConnections();
    await closeHttpServer(http.server, 2000);
    await store.close();
  },
});

start().catch(async (err: unknown) => {
  logger.fatal({ err }, `monitoring could not start: ${(err as Error).message}`);
  await flushLogger(logger);
  process.exit(1);
});
