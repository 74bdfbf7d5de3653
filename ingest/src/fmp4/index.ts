/** The fMP4 toolkit: read ffmpeg's fragmented MP4 stream into samples, write samples as LL-HLS parts. */
export { childBoxes, findChild, readBoxHeader, type BoxHeader } from './boxes.ts';
export { BoxSplitter, DEFAULT_MAX_BOX_SIZE, type BoxSplitterOptions, type TopLevelBox } from './box-stream.ts';
export { Fmp4Error, type Fmp4ErrorCode } from './errors.ts';
export { MAX_SAMPLES_PER_FRAGMENT, parseFragment, type Fragment, type FragmentBytes, type FragmentContext, type Sample, type TrackFragmentInfo } from './fragment.ts';
export { parseInitSegment, type InitSegment, type TrackDefaults, type TrackInfo } from './init-segment.ts';
export { writeFragment, type PartSample, type PartTrack } from './part-writer.ts';
export { Fmp4Reader, type Fmp4ReaderHandlers, type ReaderFragment } from './reader.ts';
