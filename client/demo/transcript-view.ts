// The live transcript on the demo page: one line per utterance of the user and per answer of the
// agent. A transcript message carries the text so far, so a line is rewritten until its final text
// arrives; the next message of that role then starts a new line.
import type { TranscriptInfo } from '../sdk/voice-client.ts';

/** Older lines are dropped: a long session must not grow the page without bound. */
const MAX_LINES = 50;
const SPEAKER = { user: 'You', agent: 'Agent' } as const;

export class TranscriptView {
  readonly #list: HTMLOListElement;

  constructor(list: HTMLOListElement) {
    this.#list = list;
  }

  clear(): void {
    this.#list.replaceChildren();
  }

  show({ role, text, final }: TranscriptInfo): void {
    // The open line of this role, wherever it is: the user may start talking before the answer's final text.
    const open = this.#list.querySelector<HTMLLIElement>(`li[data-role="${role}"][data-final="false"]`);
    const line = open ?? this.#newLine(role);
    line.querySelector('.text')!.textContent = text;
    line.dataset.final = String(final);
    // Screen readers wait for the final text instead of reading every partial.
    line.setAttribute('aria-busy', String(!final));
  }

  /** The user spoke over the answer: its last line says so. */
  markInterrupted(): void {
    const answers = this.#list.querySelectorAll<HTMLLIElement>('li[data-role="agent"]');
    const last = answers[answers.length - 1];
    if (last && !last.querySelector('.note')) {
      const note = document.createElement('span');
      note.className = 'note';
      note.textContent = ' (interrupted)';
      last.append(note);
    }
  }

  #newLine(role: TranscriptInfo['role']): HTMLLIElement {
    const line = document.createElement('li');
    line.dataset.role = role;
    const speaker = document.createElement('span');
    speaker.className = 'speaker';
    speaker.textContent = `${SPEAKER[role]}: `;
    const text = document.createElement('span');
    text.className = 'text';
    line.append(speaker, text);
    this.#list.append(line);
    while (this.#list.children.length > MAX_LINES) this.#list.firstElementChild!.remove();
    return line;
  }
}
