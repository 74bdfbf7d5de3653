/**
 * Reading a service's Prometheus page in tests: fetch it once, then take the values wanted from it.
 */

/** The text of `${baseUrl}/metrics`. */
export async function scrapeMetrics(baseUrl: string): Promise<string> {
  return (await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
}

/** The sum of the samples of `name` whose labels contain `labels` (e.g. `reason="idle"`); 0 when none. */
export function metricValue(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith('{') || rest.startsWith(' '))) continue;
    if (labels && !rest.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
