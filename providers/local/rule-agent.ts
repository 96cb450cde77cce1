/**
 * A small rule-based agent: the embedded default when no language model is configured. It
 * understands greetings, the time, help, "say that again" and goodbye, and otherwise says what
 * it heard. Rules match on speech-to-text output: lower case, no punctuation, and the usual
 * misrecognitions ("what time isn't", "good by").
 */
import type { Agent, AgentRequest } from '../types.ts';

export interface RuleAgentOptions {
  /** Epoch ms; injected so tests know what time it is. */
  now: () => number;
  /** IANA zone for the time of day; undefined = the server's. */
  timeZone: string | undefined;
  /** Words of the user's text echoed back by the fallback reply. */
  echoWords: number;
}

export const DEFAULT_RULE_AGENT_OPTIONS: RuleAgentOptions = { now: () => Date.now(), timeZone: undefined, echoWords: 8 };

type Intent = 'time' | 'help' | 'repeat' | 'goodbye' | 'greeting' | 'silence' | 'fallback';

/** First match wins: "hi, what time is it" asks for the time, "hello, bye" takes leave. */
const RULES: ReadonlyArray<{ intent: Intent; patterns: RegExp[] }> = [
  {
    intent: 'time',
    patterns: [/\btime is it\b/, /\bwhat time\b/, /\b(whats|tell me|know|current) (the )?time\b/, /\bhave the time\b/, /^(the )?time( please)?$/],
  },
  {
    intent: 'repeat',
    patterns: [/\b(say|said) (that|it|this) again\b/, /\brepeat\b/, /\bcome again\b/, /\bpardon\b/, /\bwhat did you (just )?say\b/, /\bone more time\b/],
  },
  {
    intent: 'help',
    patterns: [/\bhelp\b/, /\bwhat (can|could) you\b/, /\bwhat do you do\b/, /\bwhat are you able\b/, /\bwhat can i (say|ask)\b/],
  },
  {
    intent: 'goodbye',
    patterns: [/\b(good ?)?bye\b/, /^(good )?by$/, /\bgood by\b/, /\bsee you\b/, /\bfarewell\b/, /\bgood night\b/, /\btalk to you later\b/],
  },
  {
    intent: 'greeting',
    patterns: [/^(hi|hey|hiya|greetings)\b/, /^(high|hay) there\b/, /\b(hello|hallo|hullo|howdy)\b/, /\bgood (morning|afternoon|evening)\b/],
  },
];

/** Lower case, apostrophes dropped ("what's" -> "whats"), anything else that is not a letter or digit -> space. */
function normalize(text: string): string {
  return text
    .toLowerCase()
    .replace(/['’]/g, '')
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

function classify(userText: string): Intent {
  const text = normalize(userText);
  if (!text) return 'silence';
  return RULES.find((rule) => rule.patterns.some((pattern) => pattern.test(text)))?.intent ?? 'fallback';
}

export class RuleAgent implements Agent {
  readonly name = 'rule-agent';
  readonly #options: RuleAgentOptions;
  readonly #clock: Intl.DateTimeFormat;

  constructor(options: Partial<RuleAgentOptions> = {}) {
    this.#options = { ...DEFAULT_RULE_AGENT_OPTIONS, ...options };
    this.#clock = new Intl.DateTimeFormat('en-US', { hour: 'numeric', minute: '2-digit', timeZone: this.#options.timeZone });
  }

  /** Word-sized deltas (each word with the space before it); ends quietly on abort. */
  async *respond(request: AgentRequest): AsyncIterable<string> {
    const reply = this.#reply(request);
    for (const delta of reply.match(/\s*\S+/g) ?? []) {
      if (request.signal.aborted) return;
      yield delta;
    }
  }

  #reply({ userText, history }: AgentRequest): string {
    switch (classify(userText)) {
      case 'time':
        // Intl puts a narrow no-break space before AM/PM; TTS engines want a plain one.
        return `It's ${this.#clock.format(new Date(this.#options.now())).replace(/\s/g, ' ')}.`;
      case 'repeat': {
        const previous = [...history].reverse().find((message) => message.role === 'assistant' && message.text.trim());
        return previous ? previous.text.trim() : "I haven't said anything yet. Ask me what time it is.";
      }
      case 'help':
        return 'I can tell you the time, say my last answer again, or just chat. Try asking: what time is it?';
      case 'goodbye':
        return 'Goodbye! It was nice talking to you.';
      case 'greeting':
        return 'Hello! How can I help you?';
      case 'silence':
        return "Sorry, I didn't catch that. Could you say it again?";
      case 'fallback': {
        const heard = normalize(userText).split(' ').slice(0, this.#options.echoWords).join(' ');
        return `I heard you say: ${heard}. I can tell you the time, or say help to hear what I can do.`;
      }
    }
  }
}
