// A WebSocket upgrade the vendor refused with an HTTP status: what the WebSocket adapters share.
// Each vendor explains the refusal in its own body format; `explain` pulls the message out.
import type { IncomingMessage } from 'node:http';
import { ProviderError } from './types.ts';

const MAX_BODY = 4096;

/** Reads up to 4 KiB of the refusal's body (a cut body still says what it said so far). */
export async function refusalBody(response: IncomingMessage): Promise<string> {
  let body = '';
  try {
    for await (const chunk of response) if ((body += String(chunk)).length > MAX_BODY) break;
  } catch {
    // Keep what arrived.
  }
  return body;
}

/** The refusal as a ProviderError by HTTP status (retryable for 408/429/5xx). */
export async function handshakeRefusal(provider: string, response: IncomingMessage, explain: (body: string) => string): Promise<ProviderError> {
  const body = await refusalBody(response);
  let detail: string;
  try {
    detail = explain(body);
  } catch {
    detail = body; // not the vendor's format (a proxy's page): the text as it is
  }
  return ProviderError.fromHttpStatus(provider, response.statusCode ?? 0, (detail || 'handshake refused').slice(0, 200));
}
