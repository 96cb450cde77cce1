/**
 * Turns a stream of text deltas (agent tokens) into a stream of speakable pieces: whole
 * sentences as soon as their terminator arrives, so TTS can start on the first sentence while
 * the agent is still writing the rest. A very long run without a terminator is cut at a clause
 * boundary (comma, semicolon, colon, dash) or, failing that, at a space, after `maxChars`.
 */
export interface SentenceStreamOptions {
  maxChars: number;
}

export const DEFAULT_SENTENCE_STREAM_OPTIONS: SentenceStreamOptions = { maxChars: 200 };

// A terminator followed by whitespace (the space tells "3.5" and "e.g." mid-token apart from an end).
const SENTENCE_END = /[.!?…]+["')\]]*\s+/g;

export async function* sentences(
  deltas: AsyncIterable<string>,
  options: Partial<SentenceStreamOptions> = {},
): AsyncIterable<string> {
  const { maxChars } = { ...DEFAULT_SENTENCE_STREAM_OPTIONS, ...options };
  let pending = '';
  for await (const delta of deltas) {
    pending += delta;
    for (;;) {
      const cut = nextCut(pending, maxChars);
      if (cut === -1) break;
      const piece = pending.slice(0, cut).trim();
      pending = pending.slice(cut);
      if (piece) yield piece;
    }
  }
  const rest = pending.trim();
  if (rest) yield rest;
}

function nextCut(text: string, maxChars: number): number {
  SENTENCE_END.lastIndex = 0;
  const end = SENTENCE_END.exec(text);
  if (end) return end.index + end[0].length;
  if (text.length <= maxChars) return -1;
  const window = text.slice(0, maxChars);
  const clause = Math.max(window.lastIndexOf(', '), window.lastIndexOf('; '), window.lastIndexOf(': '), window.lastIndexOf(' - '));
  if (clause > 0) return clause + 2;
  const space = window.lastIndexOf(' ');
  return space > 0 ? space + 1 : maxChars;
}
