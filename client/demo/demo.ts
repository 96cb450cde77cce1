// The demo page served at `/`: connect in a mode (the voice agent or the echo), watch the session
// state, the mic level, the link and its quality, the live transcript and each turn; mute, restart
// ICE, or simulate a network drop to watch the client resume. Access tokens come from the server's
// development mode (GET /v1/dev-token), or from the page address: `#token=<jwt>`.
import type { ConversationTurn } from '../../server/session-types.ts';
import type { QualityInfo, SessionMode } from '../../signaling/protocol.ts';
import { VoiceClient } from '../sdk/voice-client.ts';
import { TranscriptView } from './transcript-view.ts';

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
const modeSelect = byId<HTMLSelectElement>('mode');
const connectButton = byId<HTMLButtonElement>('connect');
const disconnectButton = byId<HTMLButtonElement>('disconnect');
const stateOutput = byId<HTMLOutputElement>('state');
const micLevel = byId<HTMLMeterElement>('mic-level');
const turnList = byId<HTMLOListElement>('turns');
const transcript = new TranscriptView(byId<HTMLOListElement>('transcript'));
const errorLine = byId<HTMLParagraphElement>('error');
const linkOutput = byId<HTMLOutputElement>('link');
const qualityOutput = byId<HTMLOutputElement>('quality');
const muteButton = byId<HTMLButtonElement>('mute');
const restartIceButton = byId<HTMLButtonElement>('restart-ice');
const simulateDropButton = byId<HTMLButtonElement>('simulate-drop');

let client: VoiceClient | undefined;

/** This page load's identity: every dev token names it, so that a resume presents the same one. */
const pageIdentity = `demo-${Math.random().toString(36).slice(2, 10)}`;

/** A token given in the page address wins; else a fresh dev token (for each join and resume). */
async function accessToken(room: string | undefined): Promise<string> {
  const given = new URLSearchParams(location.hash.slice(1)).get('token');
  if (given) return given;
  const query = new URLSearchParams({ identity: pageIdentity, ...(room ? { room } : {}) });
  const response = await fetch(`/v1/dev-token?${query}`, { cache: 'no-store' });
  if (response.status === 404) throw new Error('this server is not in development mode: open the page as …/#token=<access token>');
  const body = (await response.json().catch(() => ({}))) as { token?: string; code?: string; message?: string };
  if (!response.ok || !body.token) throw new Error(`no development token: ${body.code ?? response.status} ${body.message ?? ''}`.trim());
  return body.token;
}

function describeTurn(turn: ConversationTurn): string {
  const { firstPacketOutAt, endOfTurnAt } = turn.timings;
  const latency = firstPacketOutAt === null ? 'n/a' : `${Math.round(firstPacketOutAt - endOfTurnAt)} ms`;
  const interrupted = turn.interrupted ? ' (interrupted)' : '';
  return `#${turn.index}: user ${turn.userAudioMs} ms, agent ${turn.agentAudioMs} ms, latency ${latency}${interrupted}`;
}

/** What was said, in the agent modes (echo has no text): the question, and the answer as far as it was heard. */
function describeTurnText({ userText, agentText, heardText, interrupted }: ConversationTurn): string | null {
  if (userText === null && agentText === null) return null;
  const heard = heardText ? `heard “${heardText}”` : 'heard nothing';
  const answer = interrupted ? `${heard} of “${agentText ?? ''}”` : `“${agentText ?? ''}”`;
  return `“${userText ?? ''}” → ${answer}`;
}

function describeQuality(q: QualityInfo): string {
  const fec = q.fec ? `FEC on (${q.fecLossPercent} %)` : 'FEC off';
  const rtt = q.rttMs === null ? '' : `, RTT ${Math.round(q.rttMs)} ms`;
  return `loss ${q.lossPercent.toFixed(1)} %, ${Math.round(q.bitrate / 1000)} kb/s, ${fec}, jitter ${Math.round(q.jitterMs)} ms${rtt}`;
}

/** The list is rebuilt from the client's turns: in index order and each once, even after a resume. */
function renderTurns(turns: readonly ConversationTurn[]): void {
  turnList.replaceChildren(
    ...turns.map((turn) => {
      const item = document.createElement('li');
      item.value = turn.index;
      item.textContent = describeTurn(turn);
      const text = describeTurnText(turn);
      if (text !== null) {
        const line = document.createElement('div');
        line.className = 'turn-text';
        line.textContent = text;
        item.append(line);
      }
      return item;
    }),
  );
}

function setConnected(connected: boolean): void {
  connectButton.disabled = connected;
  roomInput.disabled = connected;
  modeSelect.disabled = connected;
  disconnectButton.disabled = !connected;
}

function setSessionControls(enabled: boolean): void {
  muteButton.disabled = !enabled;
  restartIceButton.disabled = !enabled;
  simulateDropButton.disabled = !enabled;
}

function setMuteButton(muted: boolean): void {
  muteButton.textContent = muted ? 'Unmute' : 'Mute';
  muteButton.setAttribute('aria-pressed', String(muted));
}

function showError(err: unknown): void {
  errorLine.textContent = err instanceof Error ? err.message : String(err);
}

async function connect(): Promise<void> {
  if (client || !form.reportValidity()) return;
  errorLine.textContent = '';
  turnList.replaceChildren();
  transcript.clear();
  stateOutput.textContent = 'connecting';
  linkOutput.textContent = 'ok';
  qualityOutput.textContent = 'n/a';
  setMuteButton(false);
  setConnected(true);
  const room = roomInput.value.trim();
  const mode = modeSelect.value as SessionMode;
  const current = (client = new VoiceClient({ room: room || undefined, mode, token: () => accessToken(room || undefined) }));
  // `resumed` while the outage lasts: the link line says so once the outage is over.
  let resumedInOutage = false;
  current
    .on('state', (state) => (stateOutput.textContent = state))
    .on('micLevel', (level) => (micLevel.value = level))
    .on('turn', () => renderTurns(current.turns))
    .on('transcript', (text) => transcript.show(text))
    .on('speech', (event) => {
      if (event === 'barge_in') transcript.markInterrupted();
    })
    .on('quality', (quality) => (qualityOutput.textContent = describeQuality(quality)))
    .on('reconnecting', () => {
      resumedInOutage = false;
      linkOutput.textContent = 'reconnecting';
    })
    .on('resumed', () => (resumedInOutage = true))
    .on('reconnected', () => (linkOutput.textContent = resumedInOutage ? 'resumed' : 'ok'))
    .on('error', ({ code, message }) => (errorLine.textContent = `${code}: ${message}`))
    .on('closed', () => {
      if (client === current) client = undefined;
      stateOutput.textContent = 'disconnected';
      linkOutput.textContent = 'closed'; // not "reconnecting" once the client has given up
      micLevel.value = 0;
      setConnected(false);
      setSessionControls(false);
    });
  try {
    await current.connect();
    window.voiceClient = current;
    setSessionControls(true);
  } catch (err) {
    if (!errorLine.textContent) showError(err);
  }
}

/** Runs a control's action on the connected client; a refusal (e.g. closed meanwhile) is shown, not thrown. */
function withClient(action: (current: VoiceClient) => void): void {
  if (!client) return;
  try {
    action(client);
  } catch (err) {
    showError(err);
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void connect();
});
disconnectButton.addEventListener('click', () => client?.disconnect());
muteButton.addEventListener('click', () =>
  withClient((current) => {
    current.mute(!current.muted);
    setMuteButton(current.muted);
  }),
);
restartIceButton.addEventListener('click', () => withClient((current) => current.restartIce()));
simulateDropButton.addEventListener('click', () => withClient((current) => current.simulateNetworkDrop()));
window.addEventListener('pagehide', () => client?.disconnect());
