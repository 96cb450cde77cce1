/**
 * Mono 16-bit PCM: the one type that media/ and providers/ share. Media hands speech to
 * providers as AudioFrames and plays back what they return.
 */
export interface AudioFrame {
  samples: Int16Array;
  sampleRate: number;
}
