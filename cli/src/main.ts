import { streamsCommand, type CommandIO } from './streams-command.ts';
import { tokensCommand } from './tokens-command.ts';
import { upCommand } from './up-command.ts';

const HELP = `onair — live streaming: RTMP ingest, HLS delivery, load-balanced web tier

usage:
  onair up [--no-demo]            run the whole stack as local processes (demo publisher unless --no-demo)
  onair streams add <stream>      create a stream; prints its secret once (--json for {"stream","key"})
  onair streams add <stream> --ladder 720p,480p,360p   … with a quality ladder (transcoded renditions)
  onair streams ladder <stream> <720p,360p|off>        set or remove a stream's quality ladder (next publish)
  onair streams list              list streams and their ladders (--json)
  onair streams rotate <stream>   new secret for a stream (--json)
  onair streams remove <stream>   delete a stream
  onair tokens sign <stream>      a watch link with a playback token (--ttl 24h, --base-url URL, --json)

environment: MEDIA_DIR (default ./var/media), DATA_DIR (default ./var/data), OPS_TOKEN, ports: see README`;

const io: CommandIO = { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up':
      return upCommand(rest, io);
    case 'streams':
      return streamsCommand(rest, io);
    case 'tokens':
      return tokensCommand(rest, io);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out(HELP);
      return command === undefined ? 2 : 0;
    default:
      io.err(`onair: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`onair: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
