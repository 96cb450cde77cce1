// The demo page served at `/`: connect, watch the session state, the mic level and each turn.
import type { ConversationTurn } from '../../server/session-types.ts';
import { VoiceClient } from '../sdk/voice-client.ts';

declare global {
  interface Window {
    voiceClient?: VoiceClient;
  }
}

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`demo page is missing #${id}`);
  return element as T;
}

const form = byId<HTMLFormElement>('controls');
const roomInput = byId<HTMLInputElement>('room');
const connectButton = byId<HTMLButtonElement>('connect');
const disconnectButton = byId<HTMLButtonElement>('disconnect');
const stateOutput = byId<HTMLOutputElement>('state');
const micLevel = byId<HTMLMeterElement>('mic-level');
const turnList = byId<HTMLOListElement>('turns');
const errorLine = byId<HTMLParagraphElement>('error');

let client: VoiceClient | undefined;

function describeTurn(turn: ConversationTurn): string {
  const { firstPacketOutAt, endOfTurnAt } = turn.timings;
  const latency = firstPacketOutAt === null ? 'n/a' : `${Math.round(firstPacketOutAt - endOfTurnAt)} ms`;
  const interrupted = turn.interrupted ? ' (interrupted)' : '';
  return `#${turn.index}: user ${turn.userAudioMs} ms, agent ${turn.agentAudioMs} ms, latency ${latency}${interrupted}`;
}

function setConnected(connected: boolean): void {
  connectButton.disabled = connected;
  roomInput.disabled = connected;
  disconnectButton.disabled = !connected;
}

async function connect(): Promise<void> {
  if (client || !form.reportValidity()) return;
  errorLine.textContent = '';
  turnList.replaceChildren();
  stateOutput.textContent = 'connecting';
  setConnected(true);
  const room = roomInput.value.trim();
  const current = (client = new VoiceClient({ room: room || undefined }));
  current
    .on('state', (state) => (stateOutput.textContent = state))
    .on('micLevel', (level) => (micLevel.value = level))
    .on('turn', (turn) => {
      const item = document.createElement('li');
      item.textContent = describeTurn(turn);
      turnList.append(item);
    })
    .on('error', ({ code, message }) => (errorLine.textContent = `${code}: ${message}`))
    .on('closed', () => {
      if (client === current) client = undefined;
      stateOutput.textContent = 'disconnected';
      micLevel.value = 0;
      setConnected(false);
    });
  try {
    await current.connect();
    window.voiceClient = current;
  } catch (err) {
    if (!errorLine.textContent) errorLine.textContent = err instanceof Error ? err.message : String(err);
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void connect();
});
disconnectButton.addEventListener('click', () => client?.disconnect());
window.addEventListener('pagehide', () => client?.disconnect());
