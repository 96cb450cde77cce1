// Reads a server-sent event stream (text/event-stream) from a fetch Response: what a SIP bridge
// does with GET /v1/sessions/:id/events. Yields one { event, data } per dispatched event; comment
// lines (keepalives) are skipped. Ends when the server ends the stream or `signal` aborts it.

export interface ServerSentEvent {
  event: string;
  /** The `data` field, parsed as JSON. */
  data: unknown;
  id: string | null;
}

export async function* readEventStream(response: Response): AsyncGenerator<ServerSentEvent> {
  if (!response.body) return;
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  let id: string | null = null;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      if (line === '') {
        if (data.length > 0) yield { event, data: JSON.parse(data.join('\n')), id };
        event = 'message';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
  }
}
