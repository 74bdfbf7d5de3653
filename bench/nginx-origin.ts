/**
 * The classic bar: nginx (Debian's package) serving the same HLS files straight from MEDIA_DIR
 * with sendfile, keep-alive and a buffered access log, one worker per core. The benchmark ramps the
 * same viewers against it to put onair's delivery tier (proxy + web replicas) next to it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort, ManagedProcess, waitFor } from '../common/testing/processes.ts';

export const NGINX_BINARY = '/usr/sbin/nginx';

export interface NginxOrigin {
  url: string;
  /** master and workers */
  pids(): Promise<number[]>;
  stop(): Promise<void>;
}

export async function startNginxOrigin(mediaDir: string, workDir: string): Promise<NginxOrigin | null> {
  if (!existsSync(NGINX_BINARY)) return null;
  const port = await freePort();
  const conf = path.join(workDir, 'nginx.conf');
  await writeFile(
    conf,
    `user root;
worker_processes auto;
pid ${workDir}/nginx.pid;
error_log ${workDir}/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log ${workDir}/nginx-access.log combined buffer=64k flush=1s;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 100000;
  types { application/vnd.apple.mpegurl m3u8; video/mp4 mp4 m4s; }
  server {
    listen 127.0.0.1:${port} reuseport;
    root ${mediaDir};
    location ~ \\.m3u8$ { add_header Cache-Control "max-age=0, no-cache"; }
    location ~ \\.(m4s|mp4)$ { add_header Cache-Control "public, max-age=31536000, immutable"; }
  }
}
`,
  );
  const child = spawn(NGINX_BINARY, ['-p', workDir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = new ManagedProcess('nginx', child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor('nginx to answer', async () => (await fetch(`${url}/`).catch(() => null)) !== null, 10_000);
  return {
    url,
    async pids() {
      const master = proc.pid;
      const out = [master];
      for (const entry of await readdir('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === master) out.push(Number(entry));
      }
      return out;
    },
    async stop() {
      await proc.stop(); // SIGTERM: nginx's fast shutdown
    },
  };
}
