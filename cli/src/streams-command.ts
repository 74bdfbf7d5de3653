import path from 'node:path';
import { DEFAULT_DATA_DIR } from '../../common/src/config.ts';
import { addStream, readRegistry, removeStream, rotateStreamKey, StreamRegistryError } from '../../common/src/stream-registry.ts';

export interface CommandIO {
  out: (line: string) => void;
  err: (line: string) => void;
}

const USAGE = `usage: onair streams add <stream> [--json]
       onair streams list [--json]
       onair streams rotate <stream> [--json]
       onair streams remove <stream>`;

/** `onair streams …`: manage stream names and secrets. Returns the process exit code. */
export async function streamsCommand(args: string[], io: CommandIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const dataDir = path.resolve(env.DATA_DIR || DEFAULT_DATA_DIR);
  const json = args.includes('--json');
  const [verb, name, ...rest] = args.filter((a) => a !== '--json');
  if (rest.length > 0 || !verb) {
    io.err(USAGE);
    return 2;
  }
  try {
    switch (verb) {
      case 'add':
      case 'rotate': {
        if (!name) break;
        const key = verb === 'add' ? await addStream(dataDir, name) : await rotateStreamKey(dataDir, name);
        if (json) io.out(JSON.stringify({ stream: name, key }));
        else {
          io.out(`${verb === 'add' ? 'Created' : 'New secret for'} stream "${name}". The secret is shown only this once:`);
          io.out('');
          io.out(`  OBS Server:      rtmp://<this-host>:1935/live`);
          io.out(`  OBS Stream Key:  ${name}?key=${key}`);
          io.out('');
          io.out(`Viewers: http://<this-host>:8080/watch/${name}`);
          if (verb === 'rotate') io.out('The old secret no longer works for new publishes; a broadcast already live continues.');
        }
        return 0;
      }
      case 'list': {
        if (name) break;
        const streams = await readRegistry(dataDir);
        const rows = [...streams].map(([stream, e]) => ({ stream, createdAt: e.createdAt, rotatedAt: e.rotatedAt }));
        if (json) io.out(JSON.stringify({ streams: rows }));
        else if (rows.length === 0) io.out(`no streams yet (registry: ${dataDir}); create one with: onair streams add <stream>`);
        else {
          io.out('STREAM'.padEnd(24) + 'CREATED'.padEnd(26) + 'SECRET ROTATED');
          for (const r of rows) io.out(r.stream.padEnd(24) + r.createdAt.padEnd(26) + (r.rotatedAt ?? '-'));
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
