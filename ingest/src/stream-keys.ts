import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { parseRegistry, readRegistry, registryFile, type StreamEntry } from '../../common/src/stream-registry.ts';
import type { Logger } from '../../common/src/logger.ts';

/**
 * An in-memory copy of the stream registry (DATA_DIR/streams.json), kept current by watching
 * the folder, so `onair streams add/rotate/remove` take effect without restarting ingest and
 * the publish check never touches the disk.
 */
export class StreamKeys {
  private streams = new Map<string, StreamEntry>();
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  /** mtime of the file the in-memory copy was read from (0: no file). */
  private loadedMtimeMs = 0;
  loaded = false;

  constructor(private readonly dataDir: string, private readonly logger: Logger) {}

  async start(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    await this.reload();
    this.watcher = watch(this.dataDir, (_event, file) => {
      if (file === 'streams.json') void this.reload();
    });
    this.watcher.on('error', (err) => this.logger.warn({ err }, 'cannot watch the stream registry; polling only'));
    this.timer = setInterval(() => void this.reload(), 5000);
    this.timer.unref();
  }

  stop(): void {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }

  get(stream: string): StreamEntry | undefined {
    return this.streams.get(stream);
  }

  /**
   * For a publish about to be refused as unknown or wrong-key: if the registry file changed since
   * it was read (e.g. `onair streams add` a moment ago, before the watcher's reload finished),
   * re-read it now. Synchronous because the publish check is; it runs only on that refusal path.
   * Returns true when the copy changed.
   */
  refreshIfChangedSync(): boolean {
    try {
      const file = registryFile(this.dataDir);
      const mtimeMs = statSync(file).mtimeMs;
      if (mtimeMs === this.loadedMtimeMs) return false;
      this.streams = parseRegistry(readFileSync(file, 'utf8'), file);
      this.loadedMtimeMs = mtimeMs;
      this.loaded = true;
      return true;
    } catch (err) {
      this.logger.warn({ err }, 'stream registry re-check failed');
      return false;
    }
  }

  get size(): number {
    return this.streams.size;
  }

  reload(): Promise<void> {
    // Coalesce bursts of change events into one read at a time.
    this.reloading ??= (async () => {
      try {
        const mtimeMs = await stat(registryFile(this.dataDir)).then((st) => st.mtimeMs, () => 0);
        const next = await readRegistry(this.dataDir);
        this.loadedMtimeMs = mtimeMs;
        if (next.size !== this.streams.size || [...next].some(([k, v]) => this.streams.get(k)?.keyHash !== v.keyHash)) {
          this.logger.info({ streams: next.size }, 'stream registry loaded');
        }
        this.streams = next;
        this.loaded = true;
      } catch (err) {
        // Keep the last good copy: a half-edited file must not lock every broadcaster out.
        this.logger.error({ err }, 'cannot read the stream registry, keeping the previous one');
      } finally {
        this.reloading = null;
      }
    })();
    return this.reloading;
  }
}
