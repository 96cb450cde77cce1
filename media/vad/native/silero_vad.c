/*
 * Silero VAD v5 at 16 kHz, one batched forward pass: the arithmetic of media/vad/silero_vad_v5_16k.onnx
 * (scripts/silero-16k.py) written out in C, with the weights of silero_vad_v5_16k.weights.
 *
 * Why: onnxruntime's run has a fixed cost per node that dominates at the batch sizes a media worker
 * sees (1-8 windows), and in a busy worker its code and buffers are cold on every run
 * (media/vad/README.md). Here a run is the arithmetic: ~660k multiply-adds a window, every weight read
 * once per run for the whole batch, no allocation, no dispatch.
 *
 * Layout of `weights` (float32; matrices [inputs][outputs], outputs padded with zeros to a multiple
 * of 16 and stored as panels of 16 outputs, [outputs / 16][inputs][16], so that each panel is read as
 * one sequential stream; each followed by its bias, padded alike):
 *   stft [256][272]   periodic Hann x DFT: 129 real then 129 imaginary outputs (zero bias)
 *   enc0 [387][128]   conv k=3 s=1 p=1 over 4 steps of 129; inputs tap-major (tap, channel)
 *   enc1 [384][64]    conv k=3 s=2 p=1, 4 -> 2 steps of 128
 *   enc2 [128][64]    conv k=3 s=2 p=1, 2 -> 1 step of 64: the two taps that read the input
 *   enc3 [64][128]    conv k=3 s=1 p=1, 1 -> 1 step of 64: the centre tap
 *   lstm [256][512]   gates i, o, f, c (ONNX order) over [x (128), h (128)]; bias = Wb + Rb
 *   head [128] + bias[1]
 * silero_pack_half makes float16 copies of all of it, in the same layout, for silero_run_half.
 * input [batch][576] (64 samples of context, then the 512-sample window), state [2][batch][128]
 * (h then c), probability [batch], state_out as state (may not alias it). Thread-safe: all working
 * memory is the caller's `scratch` (media workers run this concurrently).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define WINDOW 576
#define HOP 128
#define FRAMES 4
#define BINS 129
#define HIDDEN 128
#define MAX_BATCH 128
#define LANES 16 /* outputs per block: one AVX-512 vector, two AVX2 vectors */
#define PAD(n) (((n) + LANES - 1) / LANES * LANES)

enum {
  STFT_W = 0, STFT_B = STFT_W + 256 * PAD(258),
  ENC0_W = STFT_B + PAD(258), ENC0_B = ENC0_W + 387 * 128,
  ENC1_W = ENC0_B + 128, ENC1_B = ENC1_W + 384 * 64,
  ENC2_W = ENC1_B + 64, ENC2_B = ENC2_W + 128 * 64,
  ENC3_W = ENC2_B + 64, ENC3_B = ENC3_W + 64 * 128,
  LSTM_W = ENC3_B + 128, LSTM_B = LSTM_W + 256 * 512,
  HEAD_W = LSTM_B + 512, HEAD_B = HEAD_W + 128,
  WEIGHT_COUNT = HEAD_B + 1,
};

int32_t silero_weight_count(void) { return WEIGHT_COUNT; }
int32_t silero_max_batch(void) { return MAX_BATCH; }

/* x86-64: one clone per instruction set, chosen when the library loads (GCC's ifunc). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif

/*
 * Weights come in two precisions: the file's float32, or float16 copies of them (silero_pack_half)
 * that halve what a run reads. In a busy media worker the weights are out of the cache at every
 * run, so a run's cost is mostly the time to read 1.2 MB (float32) or 0.6 MB (float16); the
 * arithmetic is float32 either way. Each layer's product has one function per precision
 * (linear_f32, linear_f16 below); the rest of a run reads few weights and takes them through W().
 */
#define W(ptr, idx, half) ((half) ? (float)((const _Float16 *)(ptr))[idx] : ((const float *)(ptr))[idx])

/*
 * `rows` rows (1-4) of out[r][o] = bias[o] + sum_i in[r][i] w[i][o], for the 16 outputs o0..o0+15
 * whose weights are `panel` ([k][16]): the accumulators stay in registers, each input value is
 * broadcast against 16 weights, and there is no horizontal sum. `rows` is a constant once inlined.
 */
static inline __attribute__((always_inline)) void block(const float *restrict panel, const float *restrict bias, const float *restrict in,
                                                        int rows, int k, int n, int o0, float *restrict out, int relu) {
  float acc[4][LANES];
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < LANES; j++) acc[r][j] = bias[o0 + j];
  for (int i = 0; i < k; i++) {
    const float *wr = panel + (size_t)i * LANES;
    for (int r = 0; r < rows; r++) {
      const float x = in[(size_t)r * k + i];
#pragma omp simd
      for (int j = 0; j < LANES; j++) acc[r][j] += x * wr[j];
    }
  }
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < LANES; j++) out[(size_t)r * n + o0 + j] = relu && acc[r][j] < 0.0f ? 0.0f : acc[r][j];
}

/* out[rows][n] = in[rows][k] x w + bias (w in panels, n a multiple of 16), then ReLU if asked. */
SIMD_CLONES static void linear_f32(const float *restrict w, const float *restrict bias, const float *restrict in, int rows, int k, int n,
                                   float *restrict out, int relu) {
  for (int o0 = 0; o0 < n; o0 += LANES) {
    const float *panel = w + (size_t)o0 * k;
    int r = 0;
    for (; r + 4 <= rows; r += 4) block(panel, bias, in + (size_t)r * k, 4, k, n, o0, out + (size_t)r * n, relu);
    switch (rows - r) {
      case 3: block(panel, bias, in + (size_t)r * k, 3, k, n, o0, out + (size_t)r * n, relu); break;
      case 2: block(panel, bias, in + (size_t)r * k, 2, k, n, o0, out + (size_t)r * n, relu); break;
      case 1: block(panel, bias, in + (size_t)r * k, 1, k, n, o0, out + (size_t)r * n, relu); break;
      default: break;
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define HALF_PATH 1
/*
 * Float16 weights on x86-64, used only where silero_half_native() says the CPU has F16C, AVX2 and
 * FMA. Written with intrinsics: GCC converts _Float16 one element at a time, not 8 per instruction.
 * Same blocking as block(): 4 rows x 16 outputs of accumulators in 8 registers.
 */
#include <immintrin.h>
#define F16C_TARGET __attribute__((target("avx2,fma,f16c")))

static inline __attribute__((always_inline)) F16C_TARGET __m256 load_half8(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __attribute__((always_inline)) F16C_TARGET void block_f16(const uint16_t *restrict panel, __m256 b0, __m256 b1,
                                                                         const float *restrict in, int rows, int k, int n, float *restrict out,
                                                                         int relu) {
  __m256 lo[4], hi[4];
  for (int r = 0; r < rows; r++) lo[r] = b0, hi[r] = b1;
  for (int i = 0; i < k; i++) {
    const __m256 w0 = load_half8(panel + (size_t)i * LANES), w1 = load_half8(panel + (size_t)i * LANES + 8);
    for (int r = 0; r < rows; r++) {
      const __m256 x = _mm256_broadcast_ss(in + (size_t)r * k + i);
      lo[r] = _mm256_fmadd_ps(x, w0, lo[r]);
      hi[r] = _mm256_fmadd_ps(x, w1, hi[r]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  for (int r = 0; r < rows; r++) {
    _mm256_storeu_ps(out + (size_t)r * n, relu ? _mm256_max_ps(lo[r], zero) : lo[r]);
    _mm256_storeu_ps(out + (size_t)r * n + 8, relu ? _mm256_max_ps(hi[r], zero) : hi[r]);
  }
}

F16C_TARGET static void linear_f16(const uint16_t *restrict w, const uint16_t *restrict bias, const float *restrict in, int rows, int k, int n,
                                   float *restrict out, int relu) {
  for (int o0 = 0; o0 < n; o0 += LANES) {
    const uint16_t *panel = w + (size_t)o0 * k;
    const __m256 b0 = load_half8(bias + o0), b1 = load_half8(bias + o0 + 8);
    int r = 0;
    for (; r + 4 <= rows; r += 4) block_f16(panel, b0, b1, in + (size_t)r * k, 4, k, n, out + (size_t)r * n + o0, relu);
    switch (rows - r) {
      case 3: block_f16(panel, b0, b1, in + (size_t)r * k, 3, k, n, out + (size_t)r * n + o0, relu); break;
      case 2: block_f16(panel, b0, b1, in + (size_t)r * k, 2, k, n, out + (size_t)r * n + o0, relu); break;
      case 1: block_f16(panel, b0, b1, in + (size_t)r * k, 1, k, n, out + (size_t)r * n + o0, relu); break;
      default: break;
    }
  }
}
#else
#define HALF_PATH 0
#endif

/* The layer whose weights start at `w_at` and bias at `b_at`, in the weights' precision. */
static void linear(const void *weights, int half, int w_at, int b_at, const float *in, int rows, int k, int n, float *out, int relu) {
#if HALF_PATH
  if (half) {
    linear_f16((const uint16_t *)weights + w_at, (const uint16_t *)weights + b_at, in, rows, k, n, out, relu);
    return;
  }
#endif
  linear_f32((const float *)weights + w_at, (const float *)weights + b_at, in, rows, k, n, out, relu);
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Floats of scratch space a run of `batch` windows needs. */
int32_t silero_scratch_floats(int32_t batch) {
  return batch * (FRAMES * (256 + PAD(258) + BINS + 387 + 128) + 2 * (384 + 64) + 64 + 128 + 256 + 512);
}

static int32_t run(const void *weights, int half, const float *restrict input, const float *restrict state, int32_t batch,
                   float *restrict probability, float *restrict state_out, float *restrict scratch) {
  if (batch < 1 || batch > MAX_BATCH) return -1;
  const int steps = batch * FRAMES;
  float(*frames)[256] = (float(*)[256])scratch;
  float(*spectrum)[PAD(258)] = (float(*)[PAD(258)])(scratch += steps * 256);
  float(*magnitude)[BINS] = (float(*)[BINS])(scratch += steps * PAD(258));
  float(*cols0)[387] = (float(*)[387])(scratch += steps * BINS);
  float(*enc0)[128] = (float(*)[128])(scratch += steps * 387);
  float(*cols1)[384] = (float(*)[384])(scratch += steps * 128);
  float(*enc1)[64] = (float(*)[64])(scratch += batch * 2 * 384);
  float(*enc2)[64] = (float(*)[64])(scratch += batch * 2 * 64);
  float(*enc3)[128] = (float(*)[128])(scratch += batch * 64);
  float(*xh)[256] = (float(*)[256])(scratch += batch * 128);
  float(*gates)[512] = (float(*)[512])(scratch += batch * 256);

  /* Frames of 256 at hops of 128 over the window padded on the right by reflection (64 samples). */
  for (int b = 0; b < batch; b++) {
    const float *x = input + (size_t)b * WINDOW;
    float padded[WINDOW + 64];
    memcpy(padded, x, sizeof(float) * WINDOW);
    for (int p = 0; p < 64; p++) padded[WINDOW + p] = x[WINDOW - 2 - p];
    for (int f = 0; f < FRAMES; f++) memcpy(frames[b * FRAMES + f], padded + f * HOP, sizeof(float) * 256);
  }
  linear(weights, half, STFT_W, STFT_B, &frames[0][0], steps, 256, PAD(258), &spectrum[0][0], 0);
  for (int r = 0; r < steps; r++)
    for (int j = 0; j < BINS; j++) magnitude[r][j] = sqrtf(spectrum[r][j] * spectrum[r][j] + spectrum[r][BINS + j] * spectrum[r][BINS + j]);

  /* enc0: out step t reads steps t-1, t, t+1 (zeros outside). */
  for (int b = 0; b < batch; b++)
    for (int t = 0; t < FRAMES; t++)
      for (int j = 0; j < 3; j++) {
        const int s = t + j - 1;
        float *dst = cols0[b * FRAMES + t] + j * BINS;
        if (s < 0 || s >= FRAMES) memset(dst, 0, sizeof(float) * BINS);
        else memcpy(dst, magnitude[b * FRAMES + s], sizeof(float) * BINS);
      }
  linear(weights, half, ENC0_W, ENC0_B, &cols0[0][0], steps, 387, 128, &enc0[0][0], 1);

  /* enc1: out step t (0, 1) reads steps 2t-1, 2t, 2t+1. */
  for (int b = 0; b < batch; b++)
    for (int t = 0; t < 2; t++)
      for (int j = 0; j < 3; j++) {
        const int s = 2 * t + j - 1;
        float *dst = cols1[b * 2 + t] + j * 128;
        if (s < 0) memset(dst, 0, sizeof(float) * 128);
        else memcpy(dst, enc0[b * FRAMES + s], sizeof(float) * 128);
      }
  linear(weights, half, ENC1_W, ENC1_B, &cols1[0][0], batch * 2, 384, 64, &enc1[0][0], 1);

  /* enc2: its two live taps read steps 0 and 1, which lie next to each other: [batch][128]. */
  linear(weights, half, ENC2_W, ENC2_B, &enc1[0][0], batch, 128, 64, &enc2[0][0], 1);

  /* enc3 (centre tap), then the LSTM's input: [x, h]. */
  linear(weights, half, ENC3_W, ENC3_B, &enc2[0][0], batch, 64, 128, &enc3[0][0], 1);
  for (int b = 0; b < batch; b++) {
    memcpy(xh[b], enc3[b], sizeof(float) * HIDDEN);
    memcpy(xh[b] + HIDDEN, state + (size_t)b * HIDDEN, sizeof(float) * HIDDEN);
  }
  linear(weights, half, LSTM_W, LSTM_B, &xh[0][0], batch, 256, 512, &gates[0][0], 0);

  const float *c = state + (size_t)batch * HIDDEN;
  float *h_out = state_out, *c_out = state_out + (size_t)batch * HIDDEN;
  for (int b = 0; b < batch; b++) {
    const float *g = gates[b];
    float logit = W(weights, HEAD_B, half);
    for (int u = 0; u < HIDDEN; u++) {
      const float i = sigmoid(g[u]), o = sigmoid(g[HIDDEN + u]), f = sigmoid(g[2 * HIDDEN + u]);
      const float cand = 2.0f * sigmoid(2.0f * g[3 * HIDDEN + u]) - 1.0f; /* tanh */
      const float cell = f * c[(size_t)b * HIDDEN + u] + i * cand;
      const float h = o * (2.0f * sigmoid(2.0f * cell) - 1.0f);
      c_out[(size_t)b * HIDDEN + u] = cell;
      h_out[(size_t)b * HIDDEN + u] = h;
      if (h > 0.0f) logit += W(weights, HEAD_W + u, half) * h; /* the head reads ReLU(h) */
    }
    probability[b] = sigmoid(logit);
  }
  return 0;
}

/*
 * Returns 0, or -1 when batch is out of range. `weights`: the file's float32 (silero_run) or their
 * float16 copies (silero_run_half); `scratch`: silero_scratch_floats(batch) floats.
 */
int32_t silero_run(const float *restrict weights, const float *restrict input, const float *restrict state, int32_t batch,
                   float *restrict probability, float *restrict state_out, float *restrict scratch) {
  return run(weights, 0, input, state, batch, probability, state_out, scratch);
}

/* -2 where there is no float16 path (silero_half_native() says 0). */
int32_t silero_run_half(const uint16_t *restrict weights, const float *restrict input, const float *restrict state, int32_t batch,
                        float *restrict probability, float *restrict state_out, float *restrict scratch) {
  if (!HALF_PATH) return -2;
  return run(weights, 1, input, state, batch, probability, state_out, scratch);
}

/* The float16 copies of `weights` (WEIGHT_COUNT of each), rounded to nearest. */
void silero_pack_half(const float *restrict weights, uint16_t *restrict half) {
  for (int i = 0; i < WEIGHT_COUNT; i++) {
    const _Float16 h = (_Float16)weights[i];
    memcpy(&half[i], &h, sizeof h);
  }
}

/*
 * 1 when silero_run_half converts float16 in hardware (x86-64 with F16C, AVX2 and FMA, as x86-64-v3
 * and v4 have). 0 elsewhere: the float32 weights are then the faster choice, and the only one
 * media/vad/silero-engine.ts allows.
 */
int32_t silero_half_native(void) {
#if HALF_PATH
  __builtin_cpu_init();
  return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}
