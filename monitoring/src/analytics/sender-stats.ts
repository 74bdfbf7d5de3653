/**
 * Loss and backlog counters of the record senders (proxy and every web backend), read from their
 * Prometheus /metrics: records can only be lost or delayed on the sending side (memory queue,
 * spool, drops), so that is where the pipeline's health is measured.
 */
export interface SenderStats {
  /** Senders that answered. */
  instances: number;
  unreachable: number;
  queued: number;
  spooled: number;
  dropped: number;
  retried: number;
  /** Senders currently connected to their Fluent receiver. */
  receiverConnected: number;
}

const SUMMED: Record<string, keyof Omit<SenderStats, 'instances' | 'unreachable'>> = {
  onair_records_queued: 'queued',
  onair_records_spooled: 'spooled',
  onair_records_dropped_total: 'dropped',
  onair_records_retried_total: 'retried',
  onair_records_receiver_up: 'receiverConnected',
};

/** Sums the sender metrics in one Prometheus text exposition (all label sets). */
export function readSenderMetrics(text: string): Partial<Record<keyof typeof SUMMED, number>> & Record<string, number> {
  const sums: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('onair_records_')) continue;
    const nameEnd = line.search(/[{ ]/);
    const name = line.slice(0, nameEnd);
    if (!(name in SUMMED)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sums[name] = (sums[name] ?? 0) + value;
  }
  return sums;
}

export async function collectSenderStats(urls: readonly string[], timeoutMs = 1000): Promise<SenderStats> {
  const stats: SenderStats = { instances: 0, unreachable: 0, queued: 0, spooled: 0, dropped: 0, retried: 0, receiverConnected: 0 };
  await Promise.all(
    urls.map(async (url) => {
      try {
        const res = await fetch(`${url.replace(/\/$/, '')}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
        if (!res.ok) throw new Error(String(res.status));
        const sums = readSenderMetrics(await res.text());
        stats.instances += 1;
        for (const [metric, field] of Object.entries(SUMMED)) stats[field] += sums[metric] ?? 0;
      } catch {
        stats.unreachable += 1;
      }
    }),
  );
  return stats;
}
