import path from 'node:path';
import type { Logger } from '../../common/src/logger.ts';
import type { MonitoringConfig } from './config.ts';
import type { AccessStore } from './store/access-store.ts';
import { DuckDbAccessStore } from './store/duckdb-store.ts';
import { ElasticsearchAccessStore } from './store/elasticsearch-store.ts';

/** The embedded database by default; Elasticsearch when configured (docker-compose). */
export function createAccessStore(config: MonitoringConfig, logger: Logger): AccessStore {
  if (config.STORE === 'elasticsearch') {
    return new ElasticsearchAccessStore({
      node: config.ELASTICSEARCH_URL!,
      username: config.ELASTICSEARCH_USERNAME,
      password: config.ELASTICSEARCH_PASSWORD,
      apiKey: config.ELASTICSEARCH_API_KEY,
      retentionDays: config.RETENTION_DAYS,
    });
  }
  void logger;
  return new DuckDbAccessStore({ path: path.join(config.DATA_DIR, 'monitoring', 'access.duckdb'), memoryLimit: config.DUCKDB_MEMORY_LIMIT });
}
