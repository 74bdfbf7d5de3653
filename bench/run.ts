/**
 * `npm run bench`: figures and ratios for this machine, printed, never asserted (timings on a
 * shared 2-core machine are noisy). BENCH=ingest,latency,monitoring,shipping,capacity,soak selects benchmarks (default: ingest,latency,monitoring,capacity).
 * `soak` (SOAK_MINUTES, default 30) runs only when asked for: BENCH=soak npm run bench.
 * `ladder` (quality-ladder CPU and ffmpeg speed) too: BENCH=ladder npm run bench.
 */
import { benchCapacity } from './capacity.ts';
import { benchIngest } from './ingest.ts';
import { benchLadder } from './ladder.ts';
import { benchLatency, latencyTable } from './latency.ts';
import { benchMonitoringIngest } from './monitoring-ingest.ts';
import { benchSoak } from './soak.ts';

const selected = new Set((process.env.BENCH ?? 'ingest,latency,monitoring,capacity').split(','));
const results: Record<string, Record<string, number>> = {};

if (selected.has('ingest')) {
  console.log('ingest: one 720p30 ~2.5 Mbit/s publisher, 1 s keyframes …');
  results.ingest = await benchIngest();
  console.table(results.ingest);
}
if (selected.has('latency')) {
  console.log('latency: glass-to-glass by frame clock in Chromium through the proxy, 640×360 30 fps; cases LATENCY_CASES (default all), window LATENCY_WINDOW_S (60); results in bench/results/latency.{json,md} …');
  const latency = await benchLatency();
  const table = latencyTable(latency);
  console.table(table);
  for (const r of latency.cases) {
    results[`latency ${r.case.id}`] = { g2gMedianMs: r.glassToGlassMs.median ?? NaN, g2gP95Ms: r.glassToGlassMs.p95 ?? NaN, startupMs: r.startupMs ?? NaN, firstFrameToPlayableMs: r.firstPlayable?.firstFrameToPlayableMs ?? NaN, stalls: r.stalls.waiting, decodeFailureRate: r.decodeFailureRate };
  }
}
if (selected.has('monitoring')) {
  console.log('monitoring: receiver + DuckDB store fed by the record shipper (steady 4 000/s, then a burst) …');
  results.monitoring = await benchMonitoringIngest();
  console.table(results.monitoring);
}
if (selected.has('shipping')) {
  console.log('shipping: access records to a Fluent receiver in another process, with acks (COUNT records) …');
  await import('./record-shipping.ts'); // prints its own table
}
if (selected.has('capacity')) {
  console.log('capacity: hls.js-like viewers ramped until the SLO breaks, then the proxy overhead; results in bench/results/capacity.{json,md} …');
  const capacity = await benchCapacity();
  results.capacity = { viewersHeld: capacity.viewersHeld, firstBroken: capacity.firstBroken ?? NaN, proxySegmentP50Ratio: capacity.proxyOverhead?.segmentP50Ratio ?? NaN, proxyCpuPerGbRatio: capacity.proxyOverhead?.cpuPerGbRatio ?? NaN };
  console.table(results.capacity);
}
if (selected.has('ladder')) {
  console.log('ladder: ffmpeg CPU and speed for passthrough and quality ladders from a 720p30 source; results in bench/results/ladder.{json,md} …');
  const ladder = await benchLadder();
  for (const row of ladder.rows) results[`ladder ${row.ladder}`] = { ffmpegCores: row.ffmpegCores, speedMin: row.speedMin ?? NaN, speedMean: row.speedMean ?? NaN, slowWarnings: row.slowWarnings };
  console.table(Object.fromEntries(ladder.rows.map((r) => [r.ladder, { renditions: r.renditions.join(','), ffmpegCores: r.ffmpegCores, speedMin: r.speedMin, speedMean: r.speedMean }])));
}
if (selected.has('soak')) {
  console.log(`soak: the whole stack under steady viewers for SOAK_MINUTES (${process.env.SOAK_MINUTES ?? 30}); memory, fds and ffmpeg processes sampled …`);
  const soak = await benchSoak();
  results.soak = { minutes: soak.minutes, viewers: soak.viewers, requests: soak.requests, failedRequests: soak.failedRequests, stalls: soak.stalls, orphanedFfmpeg: soak.orphanedFfmpeg.length };
  for (const v of soak.verdicts) results.soak[`${v.process} RSS growth MB`] = Math.round(v.rssGrowthMB * 10) / 10;
}
console.log(JSON.stringify({ machine: { node: process.version, cpus: (await import('node:os')).cpus().length }, results }, null, 2));
