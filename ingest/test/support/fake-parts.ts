/** Parts as a muxer run hands them over, with recognisable bytes instead of media (playlist tests). */
import { partTargetFor, type CutPart } from '../../src/muxer/part-cutter.ts';

export interface FakePart {
  run: string;
  init: Buffer;
  part: CutPart;
  programDateTime: Date | null;
  partTarget: number | null;
}

/** `segments` segments of `partsPerSegment` parts of `partSeconds` each (30 fps frames), numbered as a run numbers them. */
export function fakeParts(run: string, segments: number, partsPerSegment = 3, partSeconds = 1 / 3, firstSegment = 0): FakePart[] {
  const out: FakePart[] = [];
  const init = Buffer.from(`init ${run}`);
  let index = firstSegment * partsPerSegment;
  for (let s = firstSegment; s < firstSegment + segments; s++) {
    for (let p = 0; p < partsPerSegment; p++, index++) {
      out.push({
        run,
        init,
        part: { index, segment: s, startsSegment: p === 0, independent: p === 0, start: index * partSeconds, duration: partSeconds, bytes: Buffer.from(`[${run} p${index}]`) },
        programDateTime: new Date(Date.UTC(2026, 0, 1) + Math.round(index * partSeconds * 1000)),
        partTarget: partTargetFor(partSeconds, 1 / 30),
      });
    }
  }
  return out;
}

/** What the segment file of `parts` (one segment's) must contain. */
export function segmentBytes(parts: readonly FakePart[]): string {
  return parts.map((p) => p.part.bytes.toString()).join('');
}

/** Publishes `count` segments of one part each (segment numbers from `first`) and ends the run, so all are listed. */
export async function publishSegments(
  playlist: { addPart(output: string, part: FakePart): void; runEnded(run: string): Promise<void>; flush(): Promise<void> },
  run: string,
  count: number,
  seconds = 1,
  first = 0,
): Promise<void> {
  for (const part of fakeParts(run, count, 1, seconds, first)) playlist.addPart('', part);
  await playlist.runEnded(run);
  await playlist.flush();
}
