/**
 * Test speech for the STT tests: a sentence spoken by the FliteTts provider (through its public
 * API only), as 16 kHz mono Int16 with some silence around it, as a VAD pre-roll would give.
 */
import { FliteTts } from '../../providers/local/flite-tts.ts';

const SAMPLE_RATE = 16000;

export async function fliteSpeech(text: string, paddingMs = 300): Promise<Int16Array> {
  async function* once(): AsyncIterable<string> {
    yield text;
  }
  const parts: Int16Array[] = [];
  for await (const frame of new FliteTts({ voice: 'kal16' }).synthesize(once(), { signal: new AbortController().signal })) {
    if (frame.sampleRate !== SAMPLE_RATE) throw new Error(`flite spoke at ${frame.sampleRate} Hz, expected ${SAMPLE_RATE}`);
    parts.push(frame.samples);
  }
  const padding = (paddingMs / 1000) * SAMPLE_RATE;
  const speech = new Int16Array(parts.reduce((sum, part) => sum + part.length, 0) + 2 * padding);
  let offset = padding;
  for (const part of parts) {
    speech.set(part, offset);
    offset += part.length;
  }
  return speech;
}

/** Splits audio into 20 ms frames, the way the pipeline pushes it. */
export function frames20ms(samples: Int16Array): Int16Array[] {
  const frameSamples = SAMPLE_RATE / 50;
  const out: Int16Array[] = [];
  for (let offset = 0; offset < samples.length; offset += frameSamples) out.push(samples.subarray(offset, offset + frameSamples));
  return out;
}
