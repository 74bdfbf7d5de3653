import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** A short plain-text answer (errors, 404s) that no cache keeps. */
export function sendText(req: IncomingMessage, res: ServerResponse, status: number, body: string, headers: OutgoingHttpHeaders = {}): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}
