/**
 * A multipart/form-data body (RFC 7578) built in one buffer: text fields and one file. The OpenAI
 * transcription upload is the only user. Built by hand rather than with FormData: fetch streams
 * a FormData body through web streams and a Blob, where one buffer is written to the socket as it
 * is (the CPU this saves per turn: providers/openai/http.ts).
 */
import { randomBytes } from 'node:crypto';

export interface MultipartBody {
  contentType: string;
  bytes: Buffer;
}

export interface MultipartFile {
  name: string;
  filename: string;
  contentType: string;
  data: Uint8Array;
}

/** `fields` in order, then `file`. Names and values must not hold CR, LF or '"'. */
export function multipartBody(file: MultipartFile, fields: Record<string, string>): MultipartBody {
  for (const text of [file.name, file.filename, file.contentType, ...Object.keys(fields), ...Object.values(fields)]) {
    if (/[\r\n"]/.test(text)) throw new RangeError(`multipart: ${JSON.stringify(text)} holds a character a form part cannot carry`);
  }
  const boundary = `----voice-session-${randomBytes(12).toString('hex')}`;
  const head = Object.entries(fields)
    .map(([name, value]) => `--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)
    .join('');
  const fileHead = `--${boundary}\r\ncontent-disposition: form-data; name="${file.name}"; filename="${file.filename}"\r\ncontent-type: ${file.contentType}\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  const before = Buffer.from(head + fileHead, 'utf8');
  const after = Buffer.from(tail, 'utf8');
  const bytes = Buffer.allocUnsafe(before.length + file.data.length + after.length);
  before.copy(bytes, 0);
  bytes.set(file.data, before.length);
  after.copy(bytes, before.length + file.data.length);
  return { contentType: `multipart/form-data; boundary=${boundary}`, bytes };
}
