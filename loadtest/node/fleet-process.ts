/**
 * A viewer fleet in its own process (loadtest/node/main.ts --control), so the load generator's CPU
 * is measured apart from the benchmark's and its event loop competes with nothing of ours.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FleetWindow } from './fleet-stats.ts';

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.ts');
const COMMAND_TIMEOUT_MS = 120_000;

export class FleetProcess {
  private readonly child: ChildProcess;
  private readonly lines: Interface;
  private readonly waiting: Array<(line: string) => void> = [];
  private stderr = '';

  constructor(options: { baseUrl: string; stream: string; joinPerSecond?: number }) {
    this.child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--control', '--base-url', options.baseUrl, '--stream', options.stream, '--join-rate', String(options.joinPerSecond ?? 200)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4000)));
    this.lines = createInterface({ input: this.child.stdout! });
    this.lines.on('line', (line) => this.waiting.shift()?.(line));
    this.child.once('exit', (code) => {
      for (const reject of this.waiting.splice(0)) reject(JSON.stringify({ op: 'exited', code, stderr: this.stderr }));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async resize(viewers: number): Promise<void> {
    await this.command({ op: 'resize', viewers });
  }

  async take(): Promise<FleetWindow> {
    return ((await this.command({ op: 'take' })) as { window: FleetWindow }).window;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end(`${JSON.stringify({ op: 'stop' })}\n`);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  private command(message: object, timeoutMs = COMMAND_TIMEOUT_MS): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (this.child.exitCode !== null) return reject(new Error(`the load generator exited: ${this.stderr}`));
      // A saturated generator answers late or never: fail instead of hanging the benchmark.
      const timer = setTimeout(() => reject(new Error(`the load generator did not answer ${JSON.stringify(message)} within ${timeoutMs / 1000} s (saturated?)`)), timeoutMs);
      this.waiting.push((line) => {
        clearTimeout(timer);
        const reply = JSON.parse(line) as Record<string, unknown>;
        if (reply.op === 'exited') reject(new Error(`the load generator exited: ${String(reply.stderr)}`));
        else resolve(reply);
      });
      this.child.stdin!.write(`${JSON.stringify(message)}\n`);
    });
  }
}
