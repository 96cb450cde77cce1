// Opus decode and encode through the system libopus (Debian's libopus0) via koffi.
// Why not opus-decoder: its WASM build exposes neither a frame size for packet-loss concealment
// (an empty packet conceals 120 ms at once) nor `decode_fec`, so in-band FEC cannot be used.
// libopus gives both, at the same cost per frame (~45 us at 16 kHz here), natively.
import koffi from 'koffi';

const LIBRARY_NAMES = ['libopus.so.0', 'libopus.so', 'libopus.0.dylib'];

interface OpusLibrary {
  decoderCreate: (fs: number, channels: number, error: number[]) => unknown;
  decode: (st: unknown, data: Uint8Array | null, len: number, pcm: Int16Array, frameSize: number, fec: number) => number;
  decoderDestroy: (st: unknown) => void;
  encoderCreate: (fs: number, channels: number, application: number, error: number[]) => unknown;
  encode: (st: unknown, pcm: Int16Array, frameSize: number, data: Uint8Array, maxBytes: number) => number;
  encoderCtl: (st: unknown, request: number, value: number) => number;
  encoderDestroy: (st: unknown) => void;
  strerror: (code: number) => string;
}

let library: OpusLibrary | undefined;

function load(): OpusLibrary {
  if (library) return library;
  let lib: ReturnType<typeof koffi.load> | undefined;
  const failures: string[] = [];
  for (const name of LIBRARY_NAMES) {
    try {
      lib = koffi.load(name);
      break;
    } catch (error) {
      failures.push(`${name}: ${(error as Error).message}`);
    }
  }
  if (!lib) {
    throw new Error(`libopus not found (install Debian's libopus0: scripts/setup.sh). Tried ${failures.join('; ')}`);
  }
  const encoderCtl = lib.func('int opus_encoder_ctl(void *st, int request, ...)');
  library = {
    decoderCreate: lib.func('void *opus_decoder_create(int32_t fs, int channels, _Out_ int *error)'),
    decode: lib.func('int opus_decode(void *st, const uint8_t *data, int32_t len, int16_t *pcm, int frame_size, int decode_fec)'),
    decoderDestroy: lib.func('void opus_decoder_destroy(void *st)'),
    encoderCreate: lib.func('void *opus_encoder_create(int32_t fs, int channels, int application, _Out_ int *error)'),
    encode: lib.func('int32_t opus_encode(void *st, const int16_t *pcm, int frame_size, uint8_t *data, int32_t max_data_bytes)'),
    encoderCtl: (st, request, value) => encoderCtl(st, request, 'int', value) as number,
    encoderDestroy: lib.func('void opus_encoder_destroy(void *st)'),
    strerror: lib.func('const char *opus_strerror(int error)'),
  };
  return library;
}

export class OpusError extends Error {
  override name = 'OpusError';
}

export type SpeechSampleRate = 8000 | 12000 | 16000 | 24000 | 48000;

/** Decodes one Opus stream to mono 16-bit PCM, 20 ms at a time, with concealment and FEC. */
export class OpusFrameDecoder {
  readonly sampleRate: SpeechSampleRate;
  readonly frameSamples: number;
  #state: unknown;
  readonly #lib = load();

  constructor(sampleRate: SpeechSampleRate = 16000, frameMs = 20) {
    this.sampleRate = sampleRate;
    this.frameSamples = (sampleRate * frameMs) / 1000;
    const error = [0];
    this.#state = this.#lib.decoderCreate(sampleRate, 1, error);
    if (error[0] !== 0 || !this.#state) throw new OpusError(`opus_decoder_create: ${this.#lib.strerror(error[0]!)}`);
  }

  /** Decodes a packet into `out` (at least 120 ms of samples for odd packet sizes); returns samples written. */
  decode(packet: Uint8Array, out: Int16Array): number {
    return this.#run(packet, packet.length, out, out.length, 0);
  }

  /** Conceals one lost frame of `frameSamples` (or `samples`) samples. */
  conceal(out: Int16Array, samples = this.frameSamples): number {
    return this.#run(null, 0, out, samples, 0);
  }

  /** Recovers the frame before `nextPacket` from its in-band FEC data (falls back to PLC inside libopus). */
  decodeFec(nextPacket: Uint8Array, out: Int16Array, samples = this.frameSamples): number {
    return this.#run(nextPacket, nextPacket.length, out, samples, 1);
  }

  free(): void {
    if (this.#state) this.#lib.decoderDestroy(this.#state);
    this.#state = null;
  }

  #run(data: Uint8Array | null, len: number, out: Int16Array, frameSize: number, fec: number): number {
    if (!this.#state) throw new OpusError('decoder is freed');
    const n = this.#lib.decode(this.#state, data, len, out, frameSize, fec);
    if (n < 0) throw new OpusError(`opus_decode: ${this.#lib.strerror(n)}`);
    return n;
  }
}

const OPUS_APPLICATION_VOIP = 2048;
const OPUS_SET_BITRATE = 4002;
const OPUS_SET_COMPLEXITY = 4010;
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;
const OPUS_SET_SIGNAL = 4024;
const OPUS_SIGNAL_VOICE = 3001;
const MAX_PACKET_BYTES = 1276;

export interface OpusEncoderOptions {
  sampleRate: SpeechSampleRate;
  bitrate: number;
  complexity: number;
  inbandFec: boolean;
  packetLossPercent: number;
}
export const DEFAULT_OPUS_ENCODER_OPTIONS: OpusEncoderOptions = {
  sampleRate: 16000,
  bitrate: 24000,
  complexity: 5,
  inbandFec: true,
  packetLossPercent: 5,
};

/** Encodes mono 16-bit PCM frames (20 ms) to Opus packets for a 48 kHz RTP stream. */
export class OpusFrameEncoder {
  readonly options: OpusEncoderOptions;
  readonly frameSamples: number;
  #state: unknown;
  readonly #lib = load();
  readonly #scratch = new Uint8Array(MAX_PACKET_BYTES);

  constructor(options: Partial<OpusEncoderOptions> = {}) {
    this.options = { ...DEFAULT_OPUS_ENCODER_OPTIONS, ...options };
    this.frameSamples = this.options.sampleRate / 50;
    const error = [0];
    this.#state = this.#lib.encoderCreate(this.options.sampleRate, 1, OPUS_APPLICATION_VOIP, error);
    if (error[0] !== 0 || !this.#state) throw new OpusError(`opus_encoder_create: ${this.#lib.strerror(error[0]!)}`);
    this.#ctl(OPUS_SET_SIGNAL, OPUS_SIGNAL_VOICE);
    this.setBitrate(this.options.bitrate);
    this.#ctl(OPUS_SET_COMPLEXITY, this.options.complexity);
    this.setFec(this.options.inbandFec, this.options.packetLossPercent);
  }

  setBitrate(bitsPerSecond: number): void {
    this.#ctl(OPUS_SET_BITRATE, Math.round(bitsPerSecond));
  }

  setFec(enabled: boolean, expectedLossPercent: number): void {
    this.#ctl(OPUS_SET_INBAND_FEC, enabled ? 1 : 0);
    this.#ctl(OPUS_SET_PACKET_LOSS_PERC, Math.max(0, Math.min(100, Math.round(expectedLossPercent))));
  }

  /** Encodes exactly one frame; returns a new packet (the caller keeps it). */
  encode(pcm: Int16Array): Uint8Array {
    if (!this.#state) throw new OpusError('encoder is freed');
    if (pcm.length !== this.frameSamples) throw new OpusError(`expected ${this.frameSamples} samples, got ${pcm.length}`);
    const n = this.#lib.encode(this.#state, pcm, this.frameSamples, this.#scratch, MAX_PACKET_BYTES);
    if (n < 0) throw new OpusError(`opus_encode: ${this.#lib.strerror(n)}`);
    return this.#scratch.slice(0, n);
  }

  free(): void {
    if (this.#state) this.#lib.encoderDestroy(this.#state);
    this.#state = null;
  }

  #ctl(request: number, value: number): void {
    const rc = this.#lib.encoderCtl(this.#state, request, value);
    if (rc !== 0) throw new OpusError(`opus_encoder_ctl(${request}): ${this.#lib.strerror(rc)}`);
  }
}
