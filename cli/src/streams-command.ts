import path from 'node:path';
import { DEFAULT_DATA_DIR } from '../../common/src/config.ts';
import { addStream, readRegistry, removeStream, rotateStreamKey, setStreamLadder, StreamRegistryError } from '../../common/src/stream-registry.ts';

export interface CommandIO {
  out: (line: string) => void;
  err: (line: string) => void;
}

const USAGE = `usage: onair streams add <stream> [--ladder 720p,480p,360p] [--json]
       onair streams ladder <stream> <720p,480p,360p|off> [--json]
       onair streams list [--json]
       onair streams rotate <stream> [--json]
       onair streams remove <stream>`;

/** `onair streams …`: manage stream names and secrets. Returns the process exit code. */
export async function streamsCommand(args: string[], io: CommandIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const dataDir = path.resolve(env.DATA_DIR || DEFAULT_DATA_DIR);
  const json = args.includes('--json');
  const positional = args.filter((a) => a !== '--json');
  // --ladder <spec> (or --ladder=<spec>): only for add.
  let ladder: string | undefined;
  const ladderAt = positional.findIndex((a) => a === '--ladder' || a.startsWith('--ladder='));
  if (ladderAt !== -1) {
    const flag = positional[ladderAt]!;
    const inline = flag.startsWith('--ladder=');
    ladder = inline ? flag.slice('--ladder='.length) : positional[ladderAt + 1];
    positional.splice(ladderAt, inline ? 1 : 2);
    if (ladder === undefined || positional[0] !== 'add') {
      io.err(USAGE);
      return 2;
    }
  }
  const [verb, name, ...rest] = positional;
  const spec = verb === 'ladder' ? rest.shift() : undefined;
  if (rest.length > 0 || !verb) {
    io.err(USAGE);
    return 2;
  }
  try {
    switch (verb) {
      case 'add':
      case 'rotate': {
        if (!name) break;
        const key = verb === 'add' ? await addStream(dataDir, name, new Date(), ladder === undefined ? {} : { ladder }) : await rotateStreamKey(dataDir, name);
        const stored = verb === 'add' ? (await readRegistry(dataDir)).get(name)?.ladder : undefined;
        if (json) io.out(JSON.stringify({ stream: name, key, ...(verb === 'add' ? { ladder: stored ?? 'off' } : {}) }));
        else {
          io.out(`${verb === 'add' ? 'Created' : 'New secret for'} stream "${name}". The secret is shown only this once:`);
          io.out('');
          io.out(`  OBS Server:      rtmp://<this-host>:1935/live`);
          io.out(`  OBS Stream Key:  ${name}?key=${key}`);
          io.out('');
          io.out(`Viewers: http://<this-host>:8080/watch/${name}`);
          if (verb === 'rotate') io.out('The old secret no longer works for new publishes; a broadcast already live continues.');
          if (stored) io.out(`Quality ladder: source + ${stored} (renditions above the source's height are skipped).`);
        }
        return 0;
      }
      case 'ladder': {
        // Takes effect at the stream's next publish.
        if (!name || spec === undefined) break;
        const stored = await setStreamLadder(dataDir, name, spec);
        if (json) io.out(JSON.stringify({ stream: name, ladder: stored ?? 'off' }));
        else if (stored) io.out(`Stream "${name}": quality ladder source + ${stored}, from its next publish.`);
        else io.out(`Stream "${name}": no quality ladder (passthrough), from its next publish.`);
        return 0;
      }
      case 'list': {
        if (name) break;
        const streams = await readRegistry(dataDir);
        const rows = [...streams].map(([stream, e]) => ({ stream, createdAt: e.createdAt, rotatedAt: e.rotatedAt, ladder: e.ladder ?? 'off' }));
        if (json) io.out(JSON.stringify({ streams: rows }));
        else if (rows.length === 0) io.out(`no streams yet (registry: ${dataDir}); create one with: onair streams add <stream>`);
        else {
          io.out('STREAM'.padEnd(24) + 'CREATED'.padEnd(26) + 'SECRET ROTATED'.padEnd(26) + 'LADDER');
          for (const r of rows) io.out(r.stream.padEnd(24) + r.createdAt.padEnd(26) + (r.rotatedAt ?? '-').padEnd(26) + (r.ladder === 'off' ? 'off (passthrough)' : `source + ${r.ladder}`));
        }
        return 0;
      }
      case 'remove': {
        if (!name) break;
        await removeStream(dataDir, name);
        if (json) io.out(JSON.stringify({ stream: name, removed: true }));
        else io.out(`Removed stream "${name}". New publishes with its secret are refused.`);
        return 0;
      }
    }
  } catch (err) {
    if (err instanceof StreamRegistryError) {
      io.err(`onair: ${err.message}`);
      return 1;
    }
    throw err;
  }
  io.err(USAGE);
  return 2;
}
