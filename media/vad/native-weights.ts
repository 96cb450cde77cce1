/**
 * Precision of the weights Silero's native kernel reads (the arithmetic is float32 either way). `f16`
 * halves the bytes a run reads, which in a busy worker is most of its cost (media/vad/README.md);
 * `auto` takes it where the CPU converts float16 in hardware (x86-64 with F16C, AVX2 and FMA), else `f32`.
 * A module of its own, free of native addons, so that the server's config (main thread) can check it.
 */
export const NATIVE_WEIGHTS = ['auto', 'f16', 'f32'] as const;
export type NativeWeights = (typeof NATIVE_WEIGHTS)[number];
