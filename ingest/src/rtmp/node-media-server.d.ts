// Our own types for the parts of node-media-server 4.4.3 (pinned exactly) that the adapter uses.
// The package ships no types and @types/node-media-server describes v2, which is wrong for v4.
// These are internal modules: test/nms-adapter.test.ts covers the behaviour we rely on.

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
    rtmp: { onDeleteStream(message: unknown): void };
    onData: (data: Buffer) => void;
    run(): void;
    close(): void;
  }

  const RtmpSession: new (socket: Socket) => NmsSession;
  export default RtmpSession;
}
