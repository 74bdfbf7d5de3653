import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Logger } from '../../common/src/logger.ts';
import type { BackendPool } from './backend-pool.ts';
import { normalizeBackendUrl } from './backend-url.ts';

const jsonList = z.union([z.array(z.string()), z.object({ backends: z.array(z.string()) }).transform((o) => o.backends)]);

/**
 * Parses a backends file: JSON (`["http://…", …]` or `{"backends": [...]}`) or one URL per line
 * (`#` starts a comment). Throws on any invalid entry: a half-edited file must not change the pool.
 * Returns null for a blank file (an editor truncating before writing) — use `[]` to mean "none".
 */
export function parseBackendsFile(text: string): string[] | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  let entries: string[];
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch (err) {
      throw new Error(`invalid JSON: ${(err as Error).message}`);
    }
    const result = jsonList.safeParse(json);
    if (!result.success) throw new Error('expected a JSON array of URLs or {"backends": [URLs]}');
    entries = result.data;
  } else {
    entries = trimmed
      .split('\n')
      .map((line) => line.replace(/#.*/, '').trim())
      .filter((line) => line !== '');
  }
  return [...new Set(entries.map((entry) => normalizeBackendUrl(entry)))];
}

/**
 * Keeps the pool in line with BACKENDS_FILE: watched with fs.watch (on the folder, so a file replaced
 * by rename is seen) and re-read every `pollMs` as a fallback. URLs that appear are added; URLs that
 * disappear are drained. Backends that never came from the file (BACKENDS, admin API) are left alone.
 */
export class BackendsFileWatcher {
  private fromFile = new Set<string>();
  private lastText: string | null = null;
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private reading: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly file: string,
    private readonly pool: BackendPool,
    private readonly pollMs: number,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.reload();
    try {
      const base = path.basename(this.file);
      this.watcher = watch(path.dirname(path.resolve(this.file)), { persistent: false }, (_event, name) => {
        if (name === null || name.toString() === base) this.schedule();
      });
      this.watcher.on('error', (err) => {
        this.logger.warn({ err, file: this.file }, 'watching the backends file failed; relying on periodic re-reads');
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (err) {
      this.logger.warn({ err, file: this.file }, 'cannot watch the backends file; relying on periodic re-reads');
    }
    this.poll = setInterval(() => void this.reload(), this.pollMs);
    this.poll.unref();
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
  }

  private schedule(): void {
    if (this.debounce || this.stopped) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.reload();
    }, 50);
  }

  /** Reads and applies the file; concurrent calls coalesce into one more read. */
  reload(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.readAndApply().finally(() => {
      this.reading = null;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.reload();
      }
    });
    return this.reading;
  }

  private async readAndApply(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if (this.lastText !== '\0missing') this.logger.warn({ file: this.file, code: (err as NodeJS.ErrnoException).code }, 'backends file unreadable; keeping the current backends');
      this.lastText = '\0missing';
      return;
    }
    if (text === this.lastText || this.stopped) return;
    this.lastText = text;
    let urls: string[] | null;
    try {
      urls = parseBackendsFile(text);
    } catch (err) {
      this.logger.error({ file: this.file, error: (err as Error).message }, 'backends file rejected; keeping the current backends');
      return;
    }
    if (urls === null) {
      this.logger.warn({ file: this.file }, 'backends file is blank; keeping the current backends (write [] to remove all)');
      return;
    }
    this.apply(urls);
  }

  private apply(urls: string[]): void {
    const next = new Set(urls);
    // Only URLs new to the file are added: a file entry an operator drained through the admin API
    // stays drained until it leaves the file and comes back.
    for (const url of next) {
      if (this.fromFile.has(url)) continue;
      const { created } = this.pool.add(url);
      this.logger.info({ backend: url, file: this.file, created }, 'backend listed in file');
    }
    for (const url of this.fromFile) {
      if (next.has(url)) continue;
      const backend = this.pool.drain(url);
      if (backend) this.logger.info({ backend: url, file: this.file }, 'backend left the file: draining');
    }
    this.fromFile = next;
  }
}
