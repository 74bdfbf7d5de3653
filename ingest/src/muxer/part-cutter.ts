/**
 * Cuts one muxer output's samples (fMP4 from ffmpeg, at most one sample per track per fragment)
 * into HLS parts and segments. Pure: no I/O, no clock.
 *
 * - The leading track (the first video track, else the first audio track) decides every cut;
 *   other tracks' samples go into whichever part is open when they arrive (ffmpeg interleaves by
 *   decode time, so that is the part their time falls in).
 * - A segment starts at a keyframe once the open segment is at least `segmentSeconds` long (less
 *   half a frame): segments last one keyframe interval when that is longer, as ffmpeg's -hls_time.
 * - A part ends at the first leading sample boundary at or past `partSeconds` (less half a frame,
 *   so jittery millisecond timestamps from FLV never tip a part to one frame more), earlier when
 *   one more frame would take it past the part target (partTargetFor: irregular frames, like the
 *   first one ffmpeg stretches to decode time 0), or where a segment starts. Parts end on sample
 *   boundaries, so a part is finished only when the next leading sample arrives: that sample gives
 *   the last one's exact duration.
 * - Every part becomes one moof+mdat with exact per-sample durations (decode-time deltas), written
 *   by the caller's `write` (fmp4 part writer).
 *
 * Parts are numbered per run from 0 across segments: the next part's name is known before anyone
 * knows whether it will start a new segment (EXT-X-PRELOAD-HINT). With several outputs (a quality
 * ladder) every output gets the same cuts: they depend only on the leading track's timestamps and
 * keyframes, which ffmpeg keeps identical across renditions (-fps_mode passthrough,
 * -force_key_frames source).
 */

/** What the cutter needs to know of a track (from the init segment). */
export interface CutterTrack {
  id: number;
  kind: 'video' | 'audio' | 'other';
  /** Ticks per second of the track's decode times. */
  timescale: number;
}

/** One media sample as read from a fragment. */
export interface CutterSample {
  track: number;
  /** Decode time, in the track's ticks. */
  dts: number;
  /** Duration as the writer of the fragment said (used only where no later sample tells better). */
  duration: number;
  flags: number;
  compositionOffset: number;
  keyframe: boolean;
  data: Buffer;
}

/** One track's samples of a part, ready to be written as a traf. */
export interface PartTrack {
  id: number;
  baseMediaDecodeTime: number;
  samples: Array<{ duration: number; flags: number; compositionOffset: number; data: Buffer }>;
}

export interface CutPart {
  /** Run-scoped part number, from 0, across segments. */
  index: number;
  /** Run-scoped segment number, from 0. */
  segment: number;
  /** The first part of its segment. */
  startsSegment: boolean;
  /** Starts with a keyframe: a player may start decoding here (EXT-X-PART INDEPENDENT=YES). */
  independent: boolean;
  /** Media time of the part's start, seconds since the run's first part (leading track). */
  start: number;
  /** Seconds (leading track). */
  duration: number;
  /** The part as one moof+mdat. */
  bytes: Buffer;
}

export interface PartCutterOptions {
  tracks: readonly CutterTrack[];
  /** Nominal part duration (HLS_PART_SECONDS). */
  partSeconds: number;
  /** A keyframe starts a new segment once the open one is this long (HLS_SEGMENT_SECONDS). */
  segmentSeconds: number;
  /** The part target to cut to (the playlist's, fixed by an earlier run); absent = measured from this output's first part. */
  partTarget?: number | null;
  /**
   * Several outputs of one run (a quality ladder): the leader decides the cuts, followers cut at the
   * same frames. Absent: this output decides alone.
   */
  plan?: { plan: CutPlan; role: 'leader' | 'follower' };
  /** Serialises a part's tracks (fmp4 part writer): `sequence` counts from 1. */
  write: (sequence: number, tracks: PartTrack[]) => Buffer;
  /** Receives each finished part, in order. */
  onPart: (part: CutPart) => void;
}

/** `styp` with major brand msdh, compatible msdh and msix: the box ffmpeg's HLS muxer starts fMP4 segments with. */
const SEGMENT_TYPE_BOX = Buffer.from([0, 0, 0, 24, ...Buffer.from('stypmsdh'), 0, 0, 0, 0, ...Buffer.from('msdhmsix')]);

/** How many recent leading-sample durations the frame duration is estimated from. */
const FRAME_WINDOW = 16;
/** A follower holding this many samples for a leader that does not decide stops waiting (ten seconds at 30 fps with audio). */
const MAX_WAITING = 800;

/**
 * The cuts of one run with several outputs (a quality ladder): the first output (the source,
 * copied, so always ahead of the encoders) decides where parts and segments start, as frame numbers
 * since the run's first keyframe; the others cut at the same frames. Their timestamps cannot be
 * compared (the encoders re-time frames to their frame grid, ffmpeg stretches the copy's first
 * frame), but their frames are the same ones (-fps_mode passthrough, keyframes where the source has
 * them), so frame numbers line the renditions' parts up exactly.
 */
export class CutPlan {
  private readonly cuts = new Map<number, { startsSegment: boolean }>();
  private decidedBelow = 0;
  private ended = false;
  private readonly listeners: Array<() => void> = [];
  /** The leader's part target: every rendition's playlist announces the same. */
  partTarget: number | null = null;
  /** The leader stopped deciding (it lags too far): followers use their own rules. */
  abandoned = false;

  /** The leader handled frame `frame`; a part starts there when `startsSegment` is not null. */
  decided(frame: number, startsSegment: boolean | null): void {
    if (startsSegment !== null && frame > 0) this.cuts.set(frame, { startsSegment });
    this.decidedBelow = frame + 1;
    for (const listener of this.listeners) listener();
    // Followers are at most a few seconds behind: forget what they have all passed long ago.
    if (this.cuts.size > 256) for (const key of this.cuts.keys()) if (key < frame - 1800) this.cuts.delete(key);
  }

  /** Whether followers know what to do at `frame`. */
  decides(frame: number): boolean {
    return this.ended || this.abandoned || frame < this.decidedBelow;
  }

  cutAt(frame: number): { startsSegment: boolean } | undefined {
    return this.cuts.get(frame);
  }

  onAdvance(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The leader's output ended: no more cuts. */
  finish(): void {
    this.ended = true;
    for (const listener of this.listeners) listener();
  }

  abandon(): void {
    this.abandoned = true;
  }
}

interface OpenPart {
  index: number;
  segment: number;
  startsSegment: boolean;
  independent: boolean;
  /** Leading track ticks. */
  startDts: number;
  /** Samples per track id, in arrival (decode) order. */
  samples: Map<number, CutterSample[]>;
}

export class PartCutter {
  private readonly leading: CutterTrack | null;
  private readonly timescales = new Map<number, number>();
  private open: OpenPart | null = null;
  private nextIndex = 0;
  private segment = -1;
  private segmentStartDts = 0;
  private firstDts: number | null = null;
  private lastLeading: CutterSample | null = null;
  private readonly recentDurations: number[] = [];
  /** The typical leading-sample duration, in ticks (0 before two leading samples). */
  private frameTicks = 0;
  /** EXT-X-PART-INF PART-TARGET of this output, fixed when its first part is finished. */
  private fixedTarget: number | null;
  /** Leading samples since (and including) the run's first keyframe: where cuts are shared. */
  private frameNumber = 0;
  /** A follower's samples that wait for the leader's decision about their frames. */
  private readonly waiting: CutterSample[] = [];
  /** Samples seen before the first keyframe (nothing can start before one). */
  dropped = 0;

  constructor(private readonly options: PartCutterOptions) {
    this.fixedTarget = options.partTarget ?? null;
    if (options.plan?.role === 'follower') options.plan.plan.onAdvance(() => this.drain());
    else if (options.plan && this.fixedTarget !== null) options.plan.plan.partTarget = this.fixedTarget;
    this.leading = options.tracks.find((t) => t.kind === 'video') ?? options.tracks.find((t) => t.kind === 'audio') ?? null;
    for (const track of options.tracks) this.timescales.set(track.id, track.timescale);
  }

  /** Seconds per leading sample, as measured so far (typicalDuration); null before two have arrived. */
  get frameDuration(): number | null {
    return this.frameTicks > 0 ? this.frameTicks / this.leading!.timescale : null;
  }

  /**
   * Seconds: the part target for this output's playlist (partTargetFor the measured frame
   * duration), fixed once the first part is finished so that cuts and playlist agree for the run.
   */
  get partTarget(): number | null {
    if (this.options.plan?.role === 'follower') return this.options.plan.plan.partTarget;
    return this.fixedTarget ?? (this.frameTicks > 0 ? partTargetFor(this.options.partSeconds, this.frameDuration!) : null);
  }

  /** The next part's run-scoped number (the preload hint). */
  get nextPartIndex(): number {
    return this.open ? this.open.index + 1 : this.nextIndex;
  }

  push(sample: CutterSample): void {
    if (!this.timescales.has(sample.track)) return; // a track the init did not declare
    if (this.options.plan?.role === 'follower') {
      // In arrival order, behind anything still waiting for the leader.
      this.waiting.push(sample);
      if (this.waiting.length > MAX_WAITING) {
        this.options.plan.plan.abandon(); // a leader that stopped deciding: followers decide alone
      }
      this.drain();
      return;
    }
    this.take(sample);
  }

  /** The run ended: the open part is finished with the durations known so far. */
  flush(): void {
    if (this.options.plan?.role === 'leader') this.options.plan.plan.finish();
    this.drain(true);
    if (this.open) this.finish(null);
  }

  /** A follower's waiting samples whose frames the leader has decided (all of them when `all`). */
  private drain(all = false): void {
    const plan = this.options.plan?.plan;
    let taken = 0;
    while (taken < this.waiting.length) {
      const sample = this.waiting[taken]!;
      const leading = this.leading !== null && sample.track === this.leading.id;
      if (!all && leading && this.open !== null && plan !== undefined && !plan.decides(this.frameNumber)) break;
      this.take(sample);
      taken++;
    }
    if (taken > 0) this.waiting.splice(0, taken);
  }

  private take(sample: CutterSample): void {
    if (this.leading === null || sample.track !== this.leading.id) {
      if (this.open) addSample(this.open, sample);
      else this.dropped++;
      return;
    }
    this.pushLeading(sample);
  }

  private pushLeading(sample: CutterSample): void {
    const timescale = this.leading!.timescale;
    if (this.lastLeading !== null) {
      const delta = sample.dts - this.lastLeading.dts;
      if (delta > 0) {
        this.recentDurations.push(delta);
        if (this.recentDurations.length > FRAME_WINDOW) this.recentDurations.shift();
        this.frameTicks = typicalDuration(this.recentDurations);
      }
    }
    const open = this.open;
    const shared = this.options.plan;
    const partsBefore = this.nextIndex;
    if (open === null) {
      // Nothing can be decoded before a keyframe: a run's output starts at its first one.
      if (this.leading!.kind === 'video' && !sample.keyframe) {
        this.dropped++;
        return;
      }
      this.start(sample, true);
    } else if (shared?.role === 'follower' && !shared.plan.abandoned) {
      // The leader cut here: so do we (same frame, whatever our own timestamps say).
      const cut = shared.plan.cutAt(this.frameNumber);
      if (cut !== undefined) {
        this.finish(sample);
        this.start(sample, cut.startsSegment);
      }
    } else {
      const frame = this.frameTicks;
      const segmentLength = sample.dts - this.segmentStartDts;
      // The open part's length if it ended here, before this sample.
      const partLength = sample.dts - open.startDts;
      const target = (this.partTarget ?? Number.POSITIVE_INFINITY) * timescale;
      const newSegment = sample.keyframe && this.leading!.kind === 'video' && segmentLength >= this.options.segmentSeconds * timescale - frame / 2;
      // Long enough (whole frames closest to partSeconds), or one more frame would make it longer
      // than the part target (a run's first frame, a dropped frame: irregular durations).
      if (newSegment || partLength >= this.options.partSeconds * timescale - frame / 2 || partLength + frame > target) {
        this.finish(sample);
        this.start(sample, newSegment);
      }
    }
    addSample(this.open!, sample);
    this.lastLeading = sample;
    if (shared?.role === 'leader') shared.plan.decided(this.frameNumber, this.nextIndex > partsBefore ? this.open!.startsSegment : null);
    this.frameNumber++;
  }

  private start(sample: CutterSample, newSegment: boolean): void {
    if (newSegment) {
      this.segment += 1;
      this.segmentStartDts = sample.dts;
    }
    this.firstDts ??= sample.dts;
    this.open = { index: this.nextIndex++, segment: this.segment, startsSegment: newSegment, independent: sample.keyframe, startDts: sample.dts, samples: new Map() };
  }

  /** Writes the open part; `next` is the leading sample that starts the following part (null at the end). */
  private finish(next: CutterSample | null): void {
    const open = this.open!;
    this.open = null;
    if (this.fixedTarget === null && this.options.plan?.role !== 'follower') {
      this.fixedTarget = this.partTarget;
      if (this.options.plan) this.options.plan.plan.partTarget = this.fixedTarget;
    }
    const leadingId = this.leading!.id;
    const tracks: PartTrack[] = [];
    let endDts = open.startDts;
    for (const [id, samples] of open.samples) {
      const out: PartTrack['samples'] = new Array(samples.length);
      for (let i = 0; i < samples.length; i++) {
        const s = samples[i]!;
        // Exact durations from the next decode time; the last one from the sample after the part
        // (the leading track) or as ffmpeg wrote it.
        const following = i + 1 < samples.length ? samples[i + 1]!.dts : id === leadingId && next !== null ? next.dts : null;
        const duration = following !== null && following > s.dts ? following - s.dts : s.duration > 0 ? s.duration : i > 0 ? out[i - 1]!.duration : id === leadingId ? Math.round(this.frameTicks) : 0;
        out[i] = { duration, flags: s.flags, compositionOffset: s.compositionOffset, data: s.data };
        if (id === leadingId) endDts = s.dts + duration;
      }
      tracks.push({ id, baseMediaDecodeTime: samples[0]!.dts, samples: out });
    }
    // Leading track first: players find the part's start time there.
    tracks.sort((a, b) => (a.id === leadingId ? -1 : b.id === leadingId ? 1 : a.id - b.id));
    const timescale = this.leading!.timescale;
    this.options.onPart({
      index: open.index,
      segment: open.segment,
      startsSegment: open.startsSegment,
      independent: open.independent,
      start: (open.startDts - this.firstDts!) / timescale,
      duration: (endDts - open.startDts) / timescale,
      // A segment starts with a segment type box (as ffmpeg's HLS muxer's, and CMAF, have it): the
      // first part of each segment carries it, so the segment file (its parts' bytes) does too.
      bytes: open.startsSegment ? Buffer.concat([SEGMENT_TYPE_BOX, this.options.write(open.index + 1, tracks)]) : this.options.write(open.index + 1, tracks),
    });
  }

}

/**
 * The typical duration among recent ones: their mean, leaving out those more than a quarter away
 * from the median. FLV's millisecond timestamps make 30 fps 33, 33, 34 ms (the mean is the frame
 * rate, the median is not); a dropped frame, or the first frame ffmpeg stretches back to decode
 * time 0, must not count.
 */
function typicalDuration(durations: readonly number[]): number {
  const sorted = [...durations].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1]!;
  let sum = 0;
  let n = 0;
  for (const d of sorted) {
    if (Math.abs(d - median) > median / 4) continue;
    sum += d;
    n += 1;
  }
  return sum / n;
}

function addSample(part: OpenPart, sample: CutterSample): void {
  const list = part.samples.get(sample.track);
  if (list) list.push(sample);
  else part.samples.set(sample.track, [sample]);
}

/**
 * EXT-X-PART-INF PART-TARGET for a nominal part duration and a frame duration: the regular part
 * (as many whole frames as the cutter takes), plus 2 ms for millisecond timestamp jitter, rounded
 * up to the millisecond. Every regular part is then ≤ the target and ≥ 85 % of it (rfc8216bis §4.4.4.9).
 */
export function partTargetFor(partSeconds: number, frameSeconds: number): number {
  const frames = Math.max(1, Math.ceil(partSeconds / frameSeconds - 0.5));
  return Math.ceil((frames * frameSeconds + 0.002) * 1000) / 1000;
}
