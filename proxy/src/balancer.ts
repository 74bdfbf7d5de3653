import type { Backend } from './backend.ts';

/**
 * Picks the backend with the fewest requests in flight; among ties, round-robin.
 *
 * Why fewest-in-flight: segment requests differ a lot in cost (a 2 MB segment vs. a 1 KB playlist)
 * and a replica that slows down (GC, disk, noisy neighbour) accumulates in-flight requests, so it
 * automatically gets fewer new ones. Why round-robin among ties: at low load every replica has 0 in
 * flight, and a plain "first minimum" would send everything to the first replica; rotating the
 * starting point spreads requests evenly, keeps every replica's page cache warm and means a replica
 * that just joined is used right away.
 *
 * O(n) per pick over the (small) list of healthy backends; no allocation.
 */
export class LeastInFlightBalancer {
  private cursor = 0;

  pick(candidates: readonly Backend[], exclude: Backend | null = null): Backend | null {
    const n = candidates.length;
    if (n === 0) return null;
    const start = this.cursor % n;
    this.cursor = start + 1;
    let best: Backend | null = null;
    let bestLoad = Infinity;
    for (let i = 0; i < n; i++) {
      const candidate = candidates[(start + i) % n]!;
      if (candidate === exclude || !candidate.available) continue;
      if (candidate.inFlight < bestLoad) {
        best = candidate;
        bestLoad = candidate.inFlight;
      }
    }
    return best;
  }
}
