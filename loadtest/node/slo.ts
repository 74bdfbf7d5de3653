/** Whether a window of viewer figures meets the SLO that defines "viewers held" (../lib/viewer.js). */
import { SLO } from '../lib/viewer.js';
import type { FleetWindow } from './fleet-stats.ts';

export interface SloVerdict {
  held: boolean;
  /** What broke, readable: ["p95 download ratio 0.62 ≥ 0.5", …] */
  broken: string[];
}

export function evaluateSlo(window: FleetWindow, slo = SLO): SloVerdict {
  const broken: string[] = [];
  if (window.segments === 0) broken.push('no segment downloaded');
  else if (!(window.downloadRatio.p95 < slo.downloadRatioP95)) broken.push(`p95 download ratio ${window.downloadRatio.p95.toFixed(2)} ≥ ${slo.downloadRatioP95}`);
  if (window.stalls > slo.stalls) broken.push(`${window.stalls} stalls (${window.stallSeconds.toFixed(1)} s)`);
  const errorRate = window.requests === 0 ? 1 : window.failedRequests / window.requests;
  if (!(errorRate < slo.errorRate)) broken.push(`error rate ${(100 * errorRate).toFixed(2)} % ≥ ${100 * slo.errorRate} % (${JSON.stringify(window.errors)})`);
  return { held: broken.length === 0, broken };
}
