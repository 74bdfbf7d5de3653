// Our own types for the parts of node-media-server 4.4.3 (pinned exactly) that the adapter uses.
// The package ships no types and @types/node-media-server describes v2, which is wrong for v4.
// These are internal modules: test/rtmp-adapter.test.ts and the ingest integration tests cover the behaviour we rely on.

declare module 'node-media-server/src/core/context.js' {
  import type { EventEmitter } from 'node:events';
  import type { NmsBroadcast, NmsSession } from 'node-media-server/src/session/rtmp_session.js';
  const Context: {
    config: { auth?: { play?: boolean; publish?: boolean; secret?: string } };
    sessions: Map<string, NmsSession>;
    broadcasts: Map<string, NmsBroadcast>;
    networkStats: { inBytes: number; outBytes: number };
    eventEmitter: EventEmitter;
  };
  export default Context;
}

declare module 'node-media-server/src/core/logger.js' {
  const logger: { level: string; log(message: string, level?: string): void };
  export default logger;
}

declare module 'node-media-server/src/session/rtmp_session.js' {
  import type { Socket } from 'node:net';

  /** Anything a broadcast can deliver FLV to: an RTMP/FLV player session or our in-process tap. */
  export interface NmsSubscriber {
    id: string;
    ip: string;
    protocol: 'flv' | 'rtmp';
    streamPath: string;
    endTime?: number;
    sendBuffer(buffer: Buffer): void;
    close(): void;
  }

  export interface NmsBroadcast {
    streamPath: string;
    publisher: NmsSession | null;
    subscribers: Map<string, NmsSubscriber>;
    publishGraceMs: number;
    verifyAuth: (authKey: string | undefined, session: NmsSession) => boolean;
    postPlay(session: NmsSubscriber): string | null;
    donePlay(session: NmsSubscriber): void;
  }

  /** A message being reassembled from chunks (one per chunk stream id). */
  export interface NmsRtmpPacket {
    header: { fmt: number; cid: number; timestamp: number; length: number; type: number; stream_id: number };
    payload: Buffer;
    /** Bytes allocated for `payload`. */
    capacity: number;
    bytes: number;
  }

  /** The chunk parser (protocol/rtmp.js); the adapter wraps some of its methods per instance. */
  export interface NmsRtmpParser {
    /** 0 until the first byte (C0) has been read. */
    handshakeState: number;
    inChunkSize: number;
    parserPacket: NmsRtmpPacket;
    inPackets: Map<number, NmsRtmpPacket>;
    /** Called once a chunk's message header is read: picks the packet for its chunk stream. */
    packetParse(): void;
    /** Called at a message's first chunk: sizes `payload` for `header.length`. */
    packetAlloc(): void;
    /** Protocol control messages (Set Chunk Size, Window Ack Size, …). */
    controlHandler(): void;
    onDeleteStream(message: unknown): void;
  }

  export interface NmsSession {
    id: string;
    ip: string;
    protocol: string;
    isPublisher: boolean;
    streamApp: string;
    streamName: string;
    streamPath: string;
    streamQuery: Record<string, string | string[] | undefined>;
    createTime: number;
    inBytes: number;
    videoCodec: number;
    videoWidth: number;
    videoHeight: number;
    videoFramerate: number;
    videoDatarate: number;
    audioCodec: number;
    audioChannels: number;
    audioSamplerate: number;
    audioDatarate: number;
    socket: Socket;
    broadcast: NmsBroadcast;
    rtmp: NmsRtmpParser;
    onData: (data: Buffer) => void;
    /** Media and data messages from the parser; `run()` wires it, so replace it before. */
    onPacket: (packet: unknown) => void;
    run(): void;
    close(): void;
  }

  const RtmpSession: new (socket: Socket) => NmsSession;
  export default RtmpSession;
}
