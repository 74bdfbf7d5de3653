import { BlockList, isIP } from 'node:net';
import { RENDITION_NAME_PATTERN } from './ladder-spec.ts';
import { classifyMediaFile } from './media-layout.ts';
import { STREAM_NAME_PATTERN } from './stream-name.ts';

/** DESIGN.md "Access record": one per HTTP request served, sent by the tier that served it. */
export interface AccessRecord {
  '@timestamp': string;
  stream: string | null;
  kind: RequestKind;
  client_ip: string;
  method: string;
  path: string;
  status: number;
  bytes: number;
  duration_ms: number;
  tier: 'proxy' | 'web';
  instance: string;
  user_agent: string;
  /** The player's session id (CMCD `sid`), null when the request carried none. */
  session_id: string | null;
  /**
   * Unique and stable for this record (`<instance>-<boot id>-<sequence>`): stores use it as the
   * document id, so a record delivered twice (replay after a lost ack) is stored once.
   */
  record_id: string;
  /** proxy only: which backend served it (null when the proxy answered itself). */
  backend?: string | null;
  /** proxy only: the X-Request-Id it set. */
  request_id?: string;
  /**
   * Why the proxy refused to serve the request (`network`, `token-missing`, `token-invalid`,
   * `token-expired`, `rate-limited`, `too-many-connections`, `bad-request`, `bad-path`,
   * `uri-too-long`, `headers-too-large`, …), null or absent when it did not refuse. A refused
   * request is never counted as a viewer.
   */
  refusal?: string | null;
}

/** Longest `path` a record carries (monitoring refuses longer ones); senders cut longer paths to this. */
export const MAX_RECORDED_PATH_LENGTH = 2048;

/** The Fluent tag access records are shipped under. */
export const ACCESS_RECORD_TAG = 'onair.access';

/**
 * Viewers are counted from the proxy tier only: it is the edge, it sees every viewer request
 * exactly once (a request retried on another replica is still one proxy record), and its
 * client_ip is the TCP peer, which no header can change. Web records are kept for delivery
 * analysis (per-backend share, errors) but never counted as viewers.
 */
export const VIEWER_COUNTING_TIER = 'proxy';

export type RequestKind = 'playlist' | 'segment' | 'page' | 'other';

const STREAM_SEGMENT = STREAM_NAME_PATTERN.source.slice(1, -1);
// A stream with a quality ladder has one folder per rendition: /live/<stream>/<rendition>/<file>.
const RENDITION_SEGMENT = RENDITION_NAME_PATTERN.source.slice(1, -1);
const LIVE_PATH = new RegExp(`^/live/(${STREAM_SEGMENT})/(?:${RENDITION_SEGMENT}/)?([^/]+)$`);
const WATCH_PATH = new RegExp(`^/watch/(${STREAM_SEGMENT})/?$`);

/** What a request path is, in the domain: which stream, and playlist / segment / page / other. */
export function describePath(path: string): { stream: string | null; kind: RequestKind } {
  const live = LIVE_PATH.exec(path);
  if (live) {
    // Only names that are media files count as playlist/segment (and so as viewing).
    const kind = classifyMediaFile(live[2]!);
    return { stream: live[1]!, kind: kind ?? 'other' };
  }
  const watch = WATCH_PATH.exec(path);
  if (watch) return { stream: watch[1]!, kind: 'page' };
  if (path === '/') return { stream: null, kind: 'page' };
  return { stream: null, kind: 'other' };
}

/** Strips an IPv4-mapped IPv6 prefix so one viewer has one address form ("::ffff:1.2.3.4" → "1.2.3.4"). */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/**
 * Trusted proxies, as IPs or CIDRs ("127.0.0.1", "10.0.0.0/8", "::1"). X-Forwarded-For is believed
 * only when the TCP peer is one of these; otherwise anyone could claim any address.
 */
export function createTrustList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const raw of entries) {
    const entry = raw.trim();
    if (!entry) continue;
    const [address, prefix] = entry.split('/') as [string, string | undefined];
    const family = isIP(address);
    if (family === 0) throw new Error(`not an IP address or CIDR: ${entry}`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else {
      const bits = Number(prefix);
      if (!Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) throw new Error(`bad CIDR prefix: ${entry}`);
      list.addSubnet(address, bits, type);
    }
  }
  return list;
}

/** Answers per list and address: BlockList.check costs microseconds, and the same few addresses recur. */
const addressListAnswers = new WeakMap<BlockList, Map<string, boolean>>();
const MAX_REMEMBERED_ADDRESSES = 4096;

/**
 * Whether `ip` (a normalized address) is in a list made by createTrustList; false for anything
 * that is not an IP. Answers are remembered: a list must not change after its first check.
 */
export function inAddressList(list: BlockList, ip: string): boolean {
  let answers = addressListAnswers.get(list);
  if (answers === undefined) addressListAnswers.set(list, (answers = new Map()));
  const known = answers.get(ip);
  if (known !== undefined) return known;
  const family = isIP(ip);
  const inList = family !== 0 && list.check(ip, family === 6 ? 'ipv6' : 'ipv4');
  if (answers.size >= MAX_REMEMBERED_ADDRESSES) answers.clear();
  answers.set(ip, inList);
  return inList;
}

/**
 * The viewer's address: walk X-Forwarded-For from the right (the hop nearest to us) while the
 * hop is a trusted proxy; the first untrusted hop is the client. Without a trusted peer, the peer.
 */
export function resolveClientIp(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted: BlockList): string {
  const peerIp = normalizeIp(peer ?? '');
  if (!forwardedFor || !inAddressList(trusted, peerIp)) return peerIp;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  let client = peerIp;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalizeIp(hops[i]!.trim());
    if (isIP(hop) === 0) break;
    client = hop;
    if (!inAddressList(trusted, hop)) break;
  }
  return client;
}
