/**
 * A backend is named by its base URL, normalized to its origin ("http://127.0.0.1:3001") so the same
 * replica written two ways ("http://127.0.0.1:3001/", "HTTP://127.0.0.1:3001") is one backend.
 * Only plain http origins: the proxy talks to replicas over a private network with a keep-alive
 * http.Agent; TLS ends at the edge (or in front of it).
 */
export function normalizeBackendUrl(raw: string): string {
  const text = raw.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`not a valid URL: ${JSON.stringify(raw)} (expected e.g. http://127.0.0.1:3001)`);
  }
  if (url.protocol !== 'http:') throw new Error(`${JSON.stringify(raw)}: only http:// backends are supported`);
  if (url.username || url.password) throw new Error(`${JSON.stringify(raw)}: credentials in a backend URL are not supported`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new Error(`${JSON.stringify(raw)}: a backend URL is an origin only (no path, query or fragment)`);
  }
  if (!url.hostname) throw new Error(`${JSON.stringify(raw)}: missing host`);
  return url.origin;
}

/** Splits a comma/whitespace separated list and normalizes each entry; duplicates collapse. */
export function parseBackendList(raw: string): string[] {
  const out = new Set<string>();
  for (const part of raw.split(/[\s,]+/)) {
    if (part) out.add(normalizeBackendUrl(part));
  }
  return [...out];
}
