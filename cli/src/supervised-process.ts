import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';

/**
 * One child process of `onair up`: its output goes to a log file, warnings and errors also to
 * the terminal in a short human form; it is restarted (with backoff) if it dies on its own,
 * and stopped by PID with SIGTERM (SIGKILL only after a grace period).
 */
export interface SupervisedOptions {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
  /** Print warn/error JSON log lines of this process to the terminal. */
  echo: (line: string) => void;
  /** Node services get an IPC channel: if the launcher dies, they notice and shut down. */
  ipc: boolean;
  restart: boolean;
}

const LEVELS: Record<string, string> = { warn: 'WARN ', error: 'ERROR', fatal: 'FATAL' };

/** ffmpeg prints its output URL in errors; a stream secret must not reach logs or the terminal. */
export function redactSecrets(text: string): string {
  return text.replace(/([?&]key=)[A-Za-z0-9_-]+/g, '$1***');
}

export function humanLogLine(name: string, line: string): string | null {
  if (!line.startsWith('{')) return `[${name}] ${line}`;
  try {
    const entry = JSON.parse(line) as Record<string, unknown>;
    const level = LEVELS[String(entry.level)];
    if (!level) return null;
    const skip = new Set(['level', 'time', 'service', 'pid', 'msg', 'component', 'instance']);
    const fields = Object.entries(entry)
      .filter(([k]) => !skip.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `[${name}] ${level} ${String(entry.msg ?? '')}${fields ? `  ${fields.slice(0, 400)}` : ''}`;
  } catch {
    return `[${name}] ${line}`;
  }
}

export class SupervisedProcess {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;
  private readonly log: WriteStream;
  private exitedPromise: Promise<void> = Promise.resolve();

  constructor(private readonly options: SupervisedOptions) {
    this.log = createWriteStream(options.logFile, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const { command, args, env, ipc, name } = this.options;
    // detached: Ctrl-C reaches only the launcher, which then stops everything in order.
    const child = spawn(command, args, { env, detached: true, stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const startedAt = Date.now();
    let partial = '';
    const onData = (chunk: Buffer): void => {
      const text = partial + redactSecrets(chunk.toString('utf8'));
      this.log.write(text.slice(partial.length));
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const shown = line ? humanLogLine(name, line) : null;
        if (shown) this.options.echo(shown);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('error', (err) => this.options.echo(`[${name}] could not start: ${err.message}`));
    this.exitedPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        resolve();
        if (this.stopping) return;
        this.options.echo(`[${name}] exited unexpectedly (code ${code}, signal ${signal}); see ${this.options.logFile}`);
        if (!this.options.restart) return;
        // A crash loop backs off; a process that ran for a while restarts quickly.
        if (Date.now() - startedAt > 30_000) this.restarts = 0;
        const delay = Math.min(500 * 2 ** this.restarts, 10_000);
        this.restarts += 1;
        setTimeout(() => {
          if (!this.stopping) {
            this.options.echo(`[${name}] restarting`);
            this.start();
          }
        }, delay);
      });
    });
  }

  async stop(graceMs = 15_000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await this.exitedPromise;
      clearTimeout(timer);
    }
    this.log.end();
    await once(this.log, 'finish').catch(() => undefined);
  }
}
