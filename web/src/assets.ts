import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** Browser files we serve under /assets/, held in memory from start-up (they never change while running). */
export interface Asset {
  body: Buffer;
  /** Pre-compressed once: hls.min.js is ~600 KB and phones are on slow links. */
  gzip: Buffer;
  contentType: string;
  etag: string;
}

const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));
const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

function makeAsset(body: Buffer, contentType: string): Asset {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, gzip: gzipSync(body, { level: 9 }), contentType, etag };
}

/** hls.js comes from our own origin (DESIGN.md: no CDN, the network may be closed). */
export async function loadAssets(): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  const hlsFile = createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js');
  assets.set('hls.min.js', makeAsset(await readFile(hlsFile), CONTENT_TYPES['.js']!));
  for (const name of await readdir(PUBLIC_DIR)) {
    const contentType = CONTENT_TYPES[path.extname(name)];
    if (contentType) assets.set(name, makeAsset(await readFile(path.join(PUBLIC_DIR, name)), contentType));
  }
  return assets;
}
