import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort, ManagedProcess, REPO_ROOT, waitFor } from './processes.ts';

/** One line of the test receiver's output file. */
export interface ReceivedEntry {
  tag: string;
  /** Event time in ms. */
  time: number;
  record: Record<string, unknown>;
}

/**
 * The test-only Fluent receiver (fluent-receiver.ts) as a separate process on a fixed port, so it
 * can be started late, SIGKILLed and restarted on the same port while a shipper keeps trying.
 */
export class TestReceiver {
  private proc: ManagedProcess | null = null;
  private constructor(readonly port: number, readonly out: string) {}

  static async create(dir: string, name = 'received.ndjson'): Promise<TestReceiver> {
    return new TestReceiver(await freePort(), path.join(dir, name));
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  get pid(): number {
    return this.proc?.pid ?? -1;
  }

  async start(env: Record<string, string> = {}): Promise<void> {
    if (this.running) throw new Error('receiver already running');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'common', 'testing', 'fluent-receiver.ts')], {
      cwd: REPO_ROOT,
      env: { ...process.env, RECEIVER_PORT: String(this.port), RECEIVER_OUT: this.out, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new ManagedProcess('fluent-receiver', child);
    this.proc = proc;
    await waitFor('the receiver to listen', () => {
      if (!proc.running) throw new Error(`receiver exited:\n${proc.tail()}`);
      return proc.output.some((line) => line.includes('"listening"'));
    }, 20_000, 20);
  }

  /** Abrupt death (no chance to flush anything). */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc?.running) return;
    proc.kill('SIGKILL');
    await proc.exited;
  }

  async stop(): Promise<void> {
    await this.proc?.stop(5_000);
  }

  /** Everything received so far (all runs: the file is appended to). */
  async entries(): Promise<ReceivedEntry[]> {
    let text: string;
    try {
      text = await readFile(this.out, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: ReceivedEntry[] = [];
    for (const line of text.split('\n')) if (line) out.push(JSON.parse(line) as ReceivedEntry);
    return out;
  }

  /** Received record_ids: how many distinct, and how many arrived more than once. */
  async ids(): Promise<{ distinct: Set<string>; total: number; duplicates: number }> {
    const entries = await this.entries();
    const distinct = new Set(entries.map((e) => String(e.record.record_id)));
    return { distinct, total: entries.length, duplicates: entries.length - distinct.size };
  }

  tail(): string {
    return this.proc?.tail() ?? '(receiver not started)';
  }
}
