// Attribute names used on metrics and spans, in one place so dashboards and code agree.
export const ATTR = {
  sessionId: 'voice.session.id',
  mode: 'voice.session.mode',
  room: 'voice.room',
  worker: 'voice.worker',
  thread: 'thread',
  state: 'state',
  reason: 'reason',
  success: 'success',
  cause: 'cause',
  errorType: 'type',
  interrupted: 'interrupted',
  /** inbound (client -> server, measured by us) or outbound (server -> client, from RTCP). */
  direction: 'direction',
  turnIndex: 'voice.turn.index',
  userText: 'voice.turn.user_text',
  agentText: 'voice.turn.agent_text',
  providerKind: 'voice.provider.kind',
  providerFrom: 'voice.provider.from',
  providerTo: 'voice.provider.to',
} as const;
