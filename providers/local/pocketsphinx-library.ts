/**
 * Debian's pocketsphinx 5prealpha (libpocketsphinx.so.3, the old `cmd_ln_t` API) through koffi,
 * and a small per-thread pool of decoders.
 *
 * Every call into a decoder runs on koffi's async threads: a search over 200 ms of audio takes
 * ~40 ms of CPU (and ps_init ~0.5 s), which the media thread's event loop must never wait for.
 * A decoder holds ~100-150 MB of models, so one thread's streams share a few, leased per utterance.
 */
import koffi from 'koffi';
import { ProviderError } from '../types.ts';

export const PROVIDER = 'pocketsphinx';

type NativeFunction = ReturnType<ReturnType<typeof koffi.load>['func']>;
type Pointer = bigint | null;

interface Library {
  psArgs: NativeFunction;
  parseConfig: NativeFunction;
  freeConfig: NativeFunction;
  init: NativeFunction;
  startUtt: NativeFunction;
  processRaw: NativeFunction;
  endUtt: NativeFunction;
  getHyp: NativeFunction;
  free: NativeFunction;
}

let library: Library | undefined;

function loadLibrary(): Library {
  if (library) return library;
  try {
    const ps = koffi.load('libpocketsphinx.so.3');
    // The cmd_ln functions live in sphinxbase, which libpocketsphinx links against.
    const base = koffi.load('libsphinxbase.so.3');
    library = {
      psArgs: ps.func('void *ps_args(void)'),
      parseConfig: base.func('void *cmd_ln_parse_r(void *inout, void *defn, int argc, const char **argv, int strict)'),
      freeConfig: base.func('int cmd_ln_free_r(void *config)'),
      init: ps.func('void *ps_init(void *config)'),
      startUtt: ps.func('int ps_start_utt(void *ps)'),
      processRaw: ps.func('int ps_process_raw(void *ps, const int16_t *data, size_t n, int no_search, int full_utt)'),
      endUtt: ps.func('int ps_end_utt(void *ps)'),
      getHyp: ps.func('const char *ps_get_hyp(void *ps, _Out_ int32_t *score)'),
      free: ps.func('int ps_free(void *ps)'),
    };
    // Silences pocketsphinx's logging for the whole process. `-logfn /dev/null` would do it per
    // decoder, but each ps_init then swaps and fcloses one global FILE that decoders on other
    // threads may be writing to at that moment; a NULL stream opens and closes nothing.
    base.func('void err_set_logfp(void *stream)')(null);
    return library;
  } catch (error) {
    throw new ProviderError(PROVIDER, 'PROVIDER_ERR_UNAVAILABLE', `${PROVIDER}: cannot load libpocketsphinx.so.3 (${(error as Error).message})`, false);
  }
}

function callAsync<T>(fn: NativeFunction, ...args: unknown[]): Promise<T> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (error: unknown, result: T) => (error ? reject(error) : resolve(result)));
  });
}

function isNull(pointer: Pointer): boolean {
  return pointer === null || pointer === 0n;
}

/** One recognizer. Its methods must not overlap: the pool hands it to one utterance at a time. */
export class PocketsphinxDecoder {
  readonly #lib: Library;
  #handle: Pointer;

  private constructor(lib: Library, handle: Pointer) {
    this.#lib = lib;
    this.#handle = handle;
  }

  /** `args` are pocketsphinx command-line options (`-hmm DIR -lm FILE -dict FILE ...`). */
  static async create(args: readonly string[]): Promise<PocketsphinxDecoder> {
    const lib = loadLibrary();
    const argv = [...args];
    const config = lib.parseConfig(null, lib.psArgs(), argv.length, argv, 1) as Pointer;
    if (isNull(config)) throw new ProviderError(PROVIDER, 'PROVIDER_ERR_CONFIG', `${PROVIDER}: invalid decoder options`, false);
    try {
      const handle = await callAsync<Pointer>(lib.init, config);
      if (isNull(handle)) throw new ProviderError(PROVIDER, 'PROVIDER_ERR_MODEL', `${PROVIDER}: cannot load the acoustic model, language model or dictionary`, false);
      return new PocketsphinxDecoder(lib, handle);
    } finally {
      lib.freeConfig(config); // ps_init keeps its own reference
    }
  }

  async startUtterance(): Promise<void> {
    this.#check(await callAsync<number>(this.#lib.startUtt, this.#live()), 'ps_start_utt');
  }

  /** `samples` must stay untouched until the promise settles (the search reads it on another thread). */
  async process(samples: Int16Array): Promise<void> {
    this.#check(await callAsync<number>(this.#lib.processRaw, this.#live(), samples, samples.length, 0, 0), 'ps_process_raw');
  }

  async endUtterance(): Promise<void> {
    this.#check(await callAsync<number>(this.#lib.endUtt, this.#live()), 'ps_end_utt');
  }

  /** The best hypothesis so far (partial during an utterance, final after `endUtterance`). */
  async hypothesis(): Promise<string> {
    const text = await callAsync<string | null>(this.#lib.getHyp, this.#live(), [0]);
    return text ?? '';
  }

  async free(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    if (!isNull(handle)) await callAsync<number>(this.#lib.free, handle);
  }

  #live(): Pointer {
    if (isNull(this.#handle)) throw new Error('decoder freed');
    return this.#handle;
  }

  #check(status: number, call: string): void {
    if (status < 0) throw new ProviderError(PROVIDER, 'PROVIDER_ERR_DECODER', `${PROVIDER}: ${call} failed (${status})`, true);
  }
}

interface Waiter {
  resolve: (decoder: PocketsphinxDecoder) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

/**
 * Up to `size` decoders for one model, created on first demand and lent out one utterance at a
 * time; callers beyond `size` wait in arrival order. Shared by every provider in the thread with
 * the same options (see `sharedDecoderPool`); freed when the last of them lets go.
 */
export class DecoderPool {
  readonly #args: readonly string[];
  readonly #size: number;
  readonly #idle: PocketsphinxDecoder[] = [];
  readonly #waiters: Waiter[] = [];
  #count = 0; // created or being created
  #creating = 0;
  #users = 0;
  readonly #onEmpty: () => void;

  constructor(args: readonly string[], size: number, onEmpty: () => void = () => {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('decoders must be a positive integer');
    this.#args = args;
    this.#size = size;
    this.#onEmpty = onEmpty;
  }

  retain(): void {
    this.#users++;
  }

  /** Drops one user; the last one frees the idle decoders (leased ones are freed when returned). */
  releaseUser(): void {
    if (--this.#users > 0) return;
    this.#onEmpty();
    for (const decoder of this.#idle.splice(0)) this.#destroy(decoder);
    this.#rejectWaiters(new ProviderError(PROVIDER, 'PROVIDER_ERR_CLOSED', `${PROVIDER}: the provider was closed`, false));
  }

  lease(signal: AbortSignal): Promise<PocketsphinxDecoder> {
    if (signal.aborted) return Promise.reject(abortError());
    if (this.#users === 0) return Promise.reject(new ProviderError(PROVIDER, 'PROVIDER_ERR_CLOSED', `${PROVIDER}: the provider was closed`, false));
    const idle = this.#idle.pop();
    if (idle) return Promise.resolve(idle);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          reject(abortError());
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#grow();
    });
  }

  /** `broken`: the decoder failed mid-utterance and its state is unknown; replace it. */
  giveBack(decoder: PocketsphinxDecoder, broken = false): void {
    if (broken || this.#users === 0) {
      this.#destroy(decoder);
      if (this.#users > 0) this.#grow();
      return;
    }
    const waiter = this.#waiters.shift();
    if (!waiter) {
      this.#idle.push(decoder);
      return;
    }
    waiter.signal.removeEventListener('abort', waiter.onAbort);
    waiter.resolve(decoder);
  }

  #grow(): void {
    // Idle decoders go straight to waiters, so waiters beyond those being created need a new one.
    if (this.#count >= this.#size || this.#waiters.length <= this.#creating) return;
    this.#count++;
    this.#creating++;
    PocketsphinxDecoder.create(this.#args).then(
      (decoder) => {
        this.#creating--;
        this.giveBack(decoder);
      },
      (error: unknown) => {
        this.#creating--;
        this.#count--;
        this.#rejectWaiters(error); // all would fail the same way (missing library or model)
      },
    );
  }

  #rejectWaiters(error: unknown): void {
    for (const waiter of this.#waiters.splice(0)) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.reject(error);
    }
  }

  #destroy(decoder: PocketsphinxDecoder): void {
    this.#count--;
    void decoder.free().catch(() => undefined);
  }
}

const pools = new Map<string, DecoderPool>();

/** The pool of this thread (module state is per worker thread) for these decoder options. */
export function sharedDecoderPool(args: readonly string[], size: number): DecoderPool {
  const key = JSON.stringify([args, size]);
  let pool = pools.get(key);
  if (!pool) {
    pool = new DecoderPool(args, size, () => pools.delete(key));
    pools.set(key, pool);
  }
  pool.retain();
  return pool;
}

function abortError(): Error {
  return new DOMException('The operation was aborted', 'AbortError');
}
