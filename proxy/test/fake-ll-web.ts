/**
 * A stand-in for a web replica serving one LL-HLS live stream, for the proxy's LL tests: it holds
 * blocking playlist reloads (`_HLS_msn`/`_HLS_part`) and requests for the hinted part until the
 * test publishes a part (docs/low-latency-hls.md "Blocking playlist reload", reduced to what the
 * proxy relies on). All replicas given the same publish() calls serve the same playlist, as real
 * replicas reading one volume do.
 *
 * In the test process: `await FakeLlWeb.start('a')`. As its own process (so a test can SIGKILL it):
 * `node --import tsx proxy/test/fake-ll-web.ts` with FAKE_WEB_PORT and FAKE_WEB_NAME; it prints
 * `listening <port>` and takes `POST /_control/publish` and `GET /_control/stats`.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

export const STREAM = 'demo';
export const RUN = 'r1';
export const PARTS_PER_SEGMENT = 6;
export const PART_TARGET = 0.334;
export const TARGET_DURATION = 2;
export const PLAYLIST_PATH = `/live/${STREAM}/index.m3u8`;

export interface Hit {
  url: string;
  headers: http.IncomingHttpHeaders;
}

interface Waiter {
  res: http.ServerResponse;
  ready: () => boolean;
  answer: () => void;
  timer: NodeJS.Timeout;
}

export function partName(k: number): string {
  return `${RUN}-p${k}.m4s`;
}

export function partPath(k: number): string {
  return `/live/${STREAM}/${partName(k)}`;
}

export function partBody(k: number): Buffer {
  return Buffer.from(`part-${k}-`.repeat(200));
}

export class FakeLlWeb {
  ready = true;
  /** Answer to a satisfied directive request. */
  directiveCacheControl = 'public, max-age=1';
  /** Answer to a directive request whose hold ran out. */
  timeoutCacheControl = 'no-store';
  /** How long a blocking request is held at most (web: 3 × TARGETDURATION). */
  holdMs = 3 * TARGET_DURATION * 1000;
  /** Last complete segment (media sequence starts at 0). */
  lastMsn = 1;
  /** Parts of the open segment (lastMsn + 1) listed. */
  openParts = 2;
  readonly hits: Hit[] = [];
  readyzHits = 0;
  private readonly waiters = new Set<Waiter>();
  private readonly sockets = new Set<Socket>();

  private constructor(readonly name: string, readonly server: http.Server, readonly port: number) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  static async start(name: string, port = 0): Promise<FakeLlWeb> {
    const server = http.createServer();
    server.keepAliveTimeout = 5_000;
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    const web = new FakeLlWeb(name, server, typeof address === 'object' && address ? address.port : 0);
    server.on('request', (req, res) => web.handle(req, res));
    return web;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Requests other than /readyz and /_control. */
  get count(): number {
    return this.hits.length;
  }

  /** Requests being held now. */
  get holding(): number {
    return this.waiters.size;
  }

  /** The global index of the next part (the hinted one). */
  get nextPart(): number {
    return (this.lastMsn + 1) * PARTS_PER_SEGMENT + this.openParts;
  }

  /** The directives a player asks with for the next part: `{msn, part}`. */
  get nextDirectives(): { msn: number; part: number } {
    return { msn: this.lastMsn + 1, part: this.openParts };
  }

  /** A new part is written and listed; a sixth part completes the segment. Held requests it satisfies are answered. */
  publish(): void {
    this.openParts++;
    if (this.openParts === PARTS_PER_SEGMENT) {
      this.lastMsn++;
      this.openParts = 0;
    }
    for (const waiter of [...this.waiters]) {
      if (!waiter.ready()) continue;
      clearTimeout(waiter.timer);
      this.waiters.delete(waiter);
      waiter.answer();
    }
  }

  playlist(): string {
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      `#EXT-X-TARGETDURATION:${TARGET_DURATION}`,
      `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${(3 * PART_TARGET).toFixed(3)}`,
      `#EXT-X-PART-INF:PART-TARGET=${PART_TARGET}`,
      '#EXT-X-MEDIA-SEQUENCE:0',
      `#EXT-X-MAP:URI="${RUN}-init.mp4"`,
    ];
    for (let msn = 0; msn <= this.lastMsn; msn++) {
      for (let i = 0; i < PARTS_PER_SEGMENT; i++) lines.push(`#EXT-X-PART:DURATION=0.33333,URI="${partName(msn * PARTS_PER_SEGMENT + i)}"${i === 0 ? ',INDEPENDENT=YES' : ''}`);
      lines.push('#EXTINF:2.000000,', `${RUN}-${msn}.m4s`);
    }
    for (let i = 0; i < this.openParts; i++) lines.push(`#EXT-X-PART:DURATION=0.33333,URI="${partName((this.lastMsn + 1) * PARTS_PER_SEGMENT + i)}"${i === 0 ? ',INDEPENDENT=YES' : ''}`);
    lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${partName(this.nextPart)}"`);
    return `${lines.join('\n')}\n# served by ${this.name}\n`;
  }

  /** Every connection cut at once, listener closed: what the proxy sees when the process is SIGKILLed. */
  async kill(): Promise<void> {
    for (const waiter of this.waiters) clearTimeout(waiter.timer);
    this.waiters.clear();
    for (const socket of this.sockets) socket.destroy();
    if (!this.server.listening) return;
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/readyz') {
      this.readyzHits++;
      res.writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(this.ready ? 'ready\n' : 'not ready\n');
      return;
    }
    if (url.pathname === '/_control/publish') {
      this.publish();
      res.end('ok\n');
      return;
    }
    if (url.pathname === '/_control/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ hits: this.hits.map((h) => h.url), holding: this.holding }));
      return;
    }
    this.hits.push({ url: req.url ?? '/', headers: req.headers });
    if (url.pathname === PLAYLIST_PATH) return this.servePlaylist(url, res);
    const part = /^\/live\/demo\/r1-p(\d+)\.m4s$/.exec(url.pathname);
    if (part !== null) return this.servePart(Number(part[1]), res);
    this.sendText(res, 404, 'not found\n');
  }

  private servePlaylist(url: URL, res: http.ServerResponse): void {
    const msnRaw = url.searchParams.get('_HLS_msn');
    const partRaw = url.searchParams.get('_HLS_part');
    const integer = (v: string | null): boolean => v === null || /^\d+$/.test(v);
    if ((partRaw !== null && msnRaw === null) || !integer(msnRaw) || !integer(partRaw)) return this.sendText(res, 400, 'bad directives\n');
    if (msnRaw === null) return this.sendPlaylist(res, 'no-cache');
    let msn = Number(msnRaw);
    let part = partRaw === null ? null : Number(partRaw);
    if (msn > this.lastMsn + 2) return this.sendText(res, 400, 'too far ahead\n');
    if (part !== null && part >= PARTS_PER_SEGMENT && msn <= this.lastMsn) {
      msn += 1;
      part = 0;
    }
    const ready = (): boolean => msn <= this.lastMsn || (part !== null && msn === this.lastMsn + 1 && part < this.openParts);
    if (ready()) return this.sendPlaylist(res, this.directiveCacheControl);
    this.hold(res, ready, () => this.sendPlaylist(res, this.directiveCacheControl), () => this.sendPlaylist(res, this.timeoutCacheControl));
  }

  private servePart(k: number, res: http.ServerResponse): void {
    const exists = k < this.nextPart;
    const send = (): void => {
      const body = partBody(k);
      res.writeHead(200, { 'content-type': 'video/iso.segment', 'cache-control': 'public, max-age=31536000, immutable', 'content-length': String(body.length), 'x-backend': this.name });
      res.end(body);
    };
    if (exists) return send();
    if (k !== this.nextPart) return this.sendText(res, 404, 'not found\n');
    this.hold(res, () => k < this.nextPart, send, () => this.sendText(res, 404, 'not found\n'));
  }

  private hold(res: http.ServerResponse, ready: () => boolean, answer: () => void, timedOut: () => void): void {
    const waiter: Waiter = {
      res,
      ready,
      answer,
      timer: setTimeout(() => {
        this.waiters.delete(waiter);
        timedOut();
      }, this.holdMs),
    };
    this.waiters.add(waiter);
    res.once('close', () => {
      clearTimeout(waiter.timer);
      this.waiters.delete(waiter);
    });
  }

  private sendPlaylist(res: http.ServerResponse, cacheControl: string): void {
    const body = this.playlist();
    res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': cacheControl, 'content-length': String(Buffer.byteLength(body)), 'x-backend': this.name });
    res.end(body);
  }

  private sendText(res: http.ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'text/plain', 'cache-control': 'no-store', 'content-length': String(body.length), 'x-backend': this.name });
    res.end(body);
  }
}

/** Run as a process: FAKE_WEB_PORT (0 = any), FAKE_WEB_NAME. */
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const web = await FakeLlWeb.start(process.env.FAKE_WEB_NAME ?? 'child', Number(process.env.FAKE_WEB_PORT ?? '0'));
  process.stdout.write(`listening ${web.port}\n`);
}
