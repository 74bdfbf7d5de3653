/**
 * Who is watching recordings, as monitoring knows it from access records (GET /api/recordings with
 * the ops token): the recordings whose playlist or segments were requested within the watch window.
 * Retention keeps those. Any doubt is an answer too: when monitoring cannot be asked or does not
 * answer properly, the result says why, and retention deletes nothing that round.
 */
export interface WatchedRecording {
  ips: number;
  sessions: number;
  lastRequestAt: string;
}

export type DeferReason = 'no-token' | 'unreachable' | 'unauthorized' | 'error' | 'bad-answer';

export type WatchCheck =
  | { ok: true; windowSeconds: number; /** by `<stream>/<session>` */ watched: Map<string, WatchedRecording> }
  | { ok: false; reason: DeferReason; detail: string };

export interface RecordingWatchersOptions {
  monitoringUrl: string;
  opsToken: string | undefined;
  windowSeconds: number;
  /** Per question (default 10 s): a store that takes longer than this is treated as not answering. */
  timeoutMs?: number;
}

export class RecordingWatchers {
  private readonly url: string;

  constructor(private readonly options: RecordingWatchersOptions) {
    this.url = `${options.monitoringUrl.replace(/\/+$/, '')}/api/recordings?seconds=${options.windowSeconds}`;
  }

  get windowSeconds(): number {
    return this.options.windowSeconds;
  }

  /** Never throws. */
  async check(): Promise<WatchCheck> {
    if (!this.options.opsToken) return { ok: false, reason: 'no-token', detail: 'OPS_TOKEN is not set: monitoring cannot be asked' };
    let res: Response;
    try {
      res = await fetch(this.url, {
        headers: { authorization: `Bearer ${this.options.opsToken}`, accept: 'application/json' },
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      return { ok: false, reason: 'unreachable', detail: `${this.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}` };
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      return { ok: false, reason: 'unreachable', detail: `${this.url}: ${(err as Error).message}` };
    }
    if (res.status === 401 || res.status === 403) return { ok: false, reason: 'unauthorized', detail: `${this.url}: ${res.status} (is OPS_TOKEN monitoring's?)` };
    if (!res.ok) return { ok: false, reason: 'error', detail: `${this.url}: ${res.status} ${text.slice(0, 200)}` };
    return parseAnswer(text, this.options.windowSeconds, this.url);
  }
}

/** Checks the answer's shape fully: a half-understood answer must not read as "nobody watches". */
export function parseAnswer(text: string, askedSeconds: number, url = '/api/recordings'): WatchCheck {
  const bad = (why: string): WatchCheck => ({ ok: false, reason: 'bad-answer', detail: `${url}: ${why}` });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return bad('not JSON');
  }
  const answer = body as { windowSeconds?: unknown; recordings?: unknown };
  if (typeof answer !== 'object' || answer === null || !Array.isArray(answer.recordings)) return bad('no recordings list');
  if (typeof answer.windowSeconds !== 'number' || answer.windowSeconds < askedSeconds) return bad(`window ${String(answer.windowSeconds)} s, asked ${askedSeconds} s`);
  const watched = new Map<string, WatchedRecording>();
  for (const item of answer.recordings as unknown[]) {
    const r = item as { stream?: unknown; session?: unknown; viewers?: { ips?: unknown; sessions?: unknown }; lastRequestAt?: unknown };
    if (typeof r?.stream !== 'string' || typeof r.session !== 'string') return bad('a recording without stream/session');
    watched.set(`${r.stream}/${r.session}`, {
      ips: typeof r.viewers?.ips === 'number' ? r.viewers.ips : 0,
      sessions: typeof r.viewers?.sessions === 'number' ? r.viewers.sessions : 0,
      lastRequestAt: typeof r.lastRequestAt === 'string' ? r.lastRequestAt : '',
    });
  }
  return { ok: true, windowSeconds: answer.windowSeconds, watched };
}
