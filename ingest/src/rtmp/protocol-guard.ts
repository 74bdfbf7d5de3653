/**
 * Limits on what one RTMP connection may make node-media-server's parser do. The library trusts
 * its input: it allocates whatever message length a chunk header declares (up to 16 MiB, per
 * chunk stream, before a byte of it arrives), accepts any chunk size (0 stalls it), and hands
 * media from a connection that never published, or whose publish was just refused, to the
 * broadcast of the path it named. These wrappers check first and throw a ProtocolViolation out
 * of the parser; the adapter's data handler catches it and drops that connection only.
 */
import type { NmsSession } from 'node-media-server/src/session/rtmp_session.js';

/** Why the adapter closed a connection itself (a metric label: keep the set small and fixed). */
export type DropReason =
  | 'not-rtmp'
  | 'malformed'
  | 'message-too-large'
  | 'bad-chunk-size'
  | 'too-many-chunk-streams'
  | 'media-before-publish'
  | 'handshake-timeout'
  | 'idle'
  | 'connection-limit';

export class ProtocolViolation extends Error {
  constructor(
    readonly reason: DropReason,
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}

export const RTMP_LIMITS = {
  /** Before a publish is accepted only commands arrive (connect, createStream, publish: a few hundred bytes). */
  maxMessageBytesBeforePublish: 64 * 1024,
  /** Message buffers a not-yet-publishing connection may hold in total. */
  maxBufferedBytesBeforePublish: 256 * 1024,
  /** An accepted publisher's largest message is a keyframe: 8 MiB is 64 Mbit in one frame. */
  maxMessageBytes: 8 * 1024 * 1024,
  maxBufferedBytes: 32 * 1024 * 1024,
  /** Encoders use a handful (FFmpeg 2,3,4,6,8; librtmp/OBS 2..7); each holds its own buffer. */
  maxChunkStreams: 32,
  /**
   * The spec allows up to 0x7FFFFFFF but calls every size above the largest message (0xFFFFFF)
   * equivalent; no encoder sends one (nginx-rtmp refuses above 10 MiB). 0 stalls the parser.
   */
  maxChunkSize: 0xffffff,
} as const;

const RTMP_VERSION = 3;
const SET_CHUNK_SIZE = 1;

/** What a first byte other than RTMP's version 3 most likely is, for the log. */
export function describeFirstByte(byte: number): string {
  if (byte === 6) return 'RTMPE (encrypted RTMP) is not supported';
  if (byte === 0x16) return 'a TLS handshake (RTMPS is not offered on this port)';
  if (byte >= 0x41 && byte <= 0x5a) return `printable ${JSON.stringify(String.fromCharCode(byte))}: a text protocol such as HTTP`;
  return `version byte ${byte}, expected ${RTMP_VERSION}`;
}

/** The first byte of a connection must be C0 = 3 (plain RTMP): anything else is refused at once. */
export function checkFirstBytes(session: NmsSession, data: Buffer): void {
  if (session.rtmp.handshakeState !== 0 || data.length === 0) return;
  if (data[0] !== RTMP_VERSION) throw new ProtocolViolation('not-rtmp', `not RTMP: ${describeFirstByte(data[0]!)}`);
}

/**
 * Wraps one session's parser. `isPublishing` says whether the session is an accepted publisher:
 * until then it gets small limits and may not send media at all.
 */
export function guardSession(session: NmsSession, isPublishing: () => boolean): void {
  const rtmp = session.rtmp;

  const pickPacket = rtmp.packetParse.bind(rtmp);
  rtmp.packetParse = () => {
    pickPacket();
    if (rtmp.inPackets.size > RTMP_LIMITS.maxChunkStreams) {
      throw new ProtocolViolation('too-many-chunk-streams', `more than ${RTMP_LIMITS.maxChunkStreams} chunk streams`);
    }
  };

  const allocate = rtmp.packetAlloc.bind(rtmp);
  rtmp.packetAlloc = () => {
    const packet = rtmp.parserPacket;
    const length = packet.header.length;
    const publishing = isPublishing();
    const maxMessage = publishing ? RTMP_LIMITS.maxMessageBytes : RTMP_LIMITS.maxMessageBytesBeforePublish;
    if (length > maxMessage) {
      throw new ProtocolViolation('message-too-large', `message of ${length} bytes declared (limit ${maxMessage}${publishing ? '' : ' before publishing'})`);
    }
    if (packet.capacity < length) {
      // The library allocates length + 1024 and keeps it per chunk stream: count what would be held.
      let held = 0;
      for (const p of rtmp.inPackets.values()) if (p !== packet) held += p.capacity;
      const maxBuffered = publishing ? RTMP_LIMITS.maxBufferedBytes : RTMP_LIMITS.maxBufferedBytesBeforePublish;
      if (held + length + 1024 > maxBuffered) {
        throw new ProtocolViolation('message-too-large', `message buffers would reach ${held + length + 1024} bytes (limit ${maxBuffered})`);
      }
    }
    allocate();
  };

  const control = rtmp.controlHandler.bind(rtmp);
  rtmp.controlHandler = () => {
    const packet = rtmp.parserPacket;
    if (packet.header.type === SET_CHUNK_SIZE) {
      if (packet.header.length < 4) throw new ProtocolViolation('malformed', `Set Chunk Size of ${packet.header.length} bytes (needs 4)`);
      const size = packet.payload.readUInt32BE(0);
      if (size < 1 || size > RTMP_LIMITS.maxChunkSize) {
        throw new ProtocolViolation('bad-chunk-size', `Set Chunk Size ${size} (accepted: 1..${RTMP_LIMITS.maxChunkSize})`);
      }
    }
    control();
  };

  // Media would go to whatever broadcast the session named, even after its publish was refused.
  const forward = session.onPacket;
  session.onPacket = (packet: unknown) => {
    if (!isPublishing()) throw new ProtocolViolation('media-before-publish', 'media or data message from a connection that is not an accepted publisher');
    forward(packet);
  };
}
