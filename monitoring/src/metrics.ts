import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type MonitoringMetrics = ReturnType<typeof createMonitoringMetrics>;

/** Reads the embedded database's own memory (null: the store has none, e.g. Elasticsearch). */
export type StoreMemoryReader = (() => Promise<number>) | null;

export function createMonitoringMetrics(registry: Registry, storeMemory: StoreMemoryReader = null) {
  if (storeMemory) {
    // Read at scrape time: RSS growth of monitoring is mostly DuckDB's buffer pool (bounded by DUCKDB_MEMORY_LIMIT).
    new Gauge({
      name: 'onair_monitoring_store_memory_bytes',
      help: 'Memory the embedded database holds (duckdb_memory(): buffer pool and other allocations)',
      registers: [registry],
      async collect() {
        this.set(await storeMemory().catch(() => 0));
      },
    });
  }
  return {
    recordsReceived: new Counter({ name: 'onair_monitoring_records_received_total', help: 'Access records received', registers: [registry] }),
    recordsStored: new Counter({ name: 'onair_monitoring_records_stored_total', help: 'Access records newly stored', registers: [registry] }),
    recordsDuplicate: new Counter({ name: 'onair_monitoring_records_duplicate_total', help: 'Records received again (redelivery) and stored once', registers: [registry] }),
    recordsRejected: new Counter({ name: 'onair_monitoring_records_rejected_total', help: 'Malformed records, by stage', labelNames: ['stage'], registers: [registry] }),
    storeWriteFailures: new Counter({ name: 'onair_monitoring_store_write_failures_total', help: 'Batches the store could not take (not acknowledged: the sender retries)', registers: [registry] }),
    storeWriteSeconds: new Histogram({ name: 'onair_monitoring_store_write_seconds', help: 'Time to store one batch', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry] }),
    pipelineLagSeconds: new Gauge({ name: 'onair_monitoring_pipeline_lag_seconds', help: 'now − newest stored record', registers: [registry] }),
    liveClients: new Gauge({ name: 'onair_monitoring_dashboard_clients', help: 'Connected dashboard WebSockets', registers: [registry] }),
    viewers: new Gauge({ name: 'onair_monitoring_viewers', help: 'Concurrent viewers per stream', labelNames: ['stream', 'by'], registers: [registry] }),
  };
}
