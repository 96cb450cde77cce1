// Where the server's audio plays in the page: the agent's answer in one element (the caller's, or
// a detached `<audio autoplay>`), and in rooms each other participant in an element of its own, as
// one element's stream would replace another's.
export class RemoteAudio {
  readonly #given: HTMLAudioElement | undefined;
  #agent: HTMLAudioElement | undefined;
  readonly #participants = new Map<string | null, HTMLAudioElement>();

  constructor(agentElement?: HTMLAudioElement) {
    this.#given = agentElement;
  }

  /** The agent's (or the echo's) audio. */
  playAgent(stream: MediaStream): void {
    this.#agent ??= this.#given ?? document.createElement('audio');
    start(this.#agent, stream, 'remote audio');
  }

  /** Rooms: another participant's audio, by the transceiver's mid that carries it. */
  playParticipant(mid: string | null, stream: MediaStream): void {
    const audio = this.#participants.get(mid) ?? document.createElement('audio');
    this.#participants.set(mid, audio);
    start(audio, stream, 'participant audio');
  }

  /** Detaches every stream (the session closed). */
  stop(): void {
    if (this.#agent) this.#agent.srcObject = null;
    for (const audio of this.#participants.values()) audio.srcObject = null;
    this.#participants.clear();
  }
}

function start(audio: HTMLAudioElement, stream: MediaStream, what: string): void {
  audio.autoplay = true;
  audio.srcObject = stream;
  audio.play().catch((err) => console.warn(`${what} did not start`, err));
}
