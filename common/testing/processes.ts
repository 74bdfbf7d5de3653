import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A port that was free a moment ago (the OS picks it); good enough for tests on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

export async function makeTempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `onair-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      lastError = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}

/** A child process whose output is kept (and shown when a test fails) and that is stopped by PID. */
export class ManagedProcess {
  /** The most recent 5 000 lines (stdout and stderr); use onLine() to see every line. */
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the process has exited and all its output has been read (`exited` may come first). */
  readonly closed: Promise<void>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly lineListeners: Array<(line: string) => void> = [];

  constructor(readonly name: string, readonly child: ChildProcess) {
    // A pipe read can end mid-line (pino writes several lines at once, asynchronously): keep the
    // unfinished tail of each stream until its newline arrives, so no JSON line is cut in two.
    const lineReader = (): { data: (chunk: Buffer) => void; end: () => void } => {
      const decoder = new StringDecoder('utf8');
      let rest = '';
      return {
        data: (chunk) => {
          const lines = (rest + decoder.write(chunk)).split('\n');
          rest = lines.pop()!;
          for (const line of lines) this.keep(line);
          if (rest.length > 1 << 20) {
            this.keep(rest);
            rest = '';
          }
        },
        end: () => {
          this.keep(rest + decoder.end());
          rest = '';
        },
      };
    };
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      const reader = lineReader();
      stream.on('data', reader.data);
      stream.on('end', reader.end);
    }
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
    this.closed = new Promise((resolve) => child.once('close', () => resolve()));
  }

  /** Calls `listener` with every complete output line from now on (not limited to the last 5 000). */
  onLine(listener: (line: string) => void): void {
    this.lineListeners.push(listener);
  }

  private keep(line: string): void {
    if (!line) return;
    this.output.push(line);
    if (this.output.length > 5000) this.output.splice(0, this.output.length - 5000);
    for (const listener of this.lineListeners) listener(line);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** Lines of structured (pino) log output that parse as JSON. */
  jsonLogs(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.output) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not JSON */
      }
    }
    return out;
  }

  /** SIGTERM, wait for a graceful exit; SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exitInfo) return this.exitInfo;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const info = await this.exited;
    clearTimeout(timer);
    return info;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.child.kill(signal);
  }

  tail(lines = 60): string {
    return `--- ${this.name} (pid ${this.pid}) last output ---\n${this.output.slice(-lines).join('\n')}`;
  }
}

/** Starts one of our services (`<service>/src/main.ts`) under tsx with the given environment. */
export function startService(service: 'ingest' | 'web' | 'proxy' | 'monitoring', env: Record<string, string>, name: string = service): ManagedProcess {
  const entry = path.join(REPO_ROOT, service, 'src', 'main.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new ManagedProcess(name, child);
}

export async function waitForHttpOk(url: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(`${url} to answer 200`, async () => (await fetch(url)).status === 200, timeoutMs, 100);
}
