import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { multipartBody } from '../../../providers/openai/multipart.ts';

describe('multipartBody', () => {
  it('builds a form that a standard multipart parser reads back: fields, then the file byte for byte', async () => {
    const data = new Uint8Array(4099).map((_, i) => (i * 7) & 0xff); // every byte value, CR/LF and '-' among them
    const body = multipartBody({ name: 'file', filename: 'utterance.wav', contentType: 'audio/wav', data }, { model: 'whisper-1', language: 'en' });
    assert.match(body.contentType, /^multipart\/form-data; boundary=----voice-session-[0-9a-f]{24}$/);
    const form = await new Response(new Uint8Array(body.bytes), { headers: { 'content-type': body.contentType } }).formData();
    const names: string[] = [];
    form.forEach((_, name) => names.push(name));
    assert.deepEqual(names, ['model', 'language', 'file']);
    assert.equal(form.get('model'), 'whisper-1');
    assert.equal(form.get('language'), 'en');
    const file = form.get('file') as File;
    assert.equal(file.name, 'utterance.wav');
    assert.equal(file.type, 'audio/wav');
    assert.deepEqual(new Uint8Array(await file.arrayBuffer()), data);
  });

  it('draws a new boundary for every body', () => {
    const file = { name: 'file', filename: 'a.wav', contentType: 'audio/wav', data: new Uint8Array(1) };
    assert.notEqual(multipartBody(file, {}).contentType, multipartBody(file, {}).contentType);
  });

  it('refuses names and values that would break out of their part (CR, LF, quote)', () => {
    const file = { name: 'file', filename: 'a.wav', contentType: 'audio/wav', data: new Uint8Array(1) };
    assert.throws(() => multipartBody(file, { model: 'x\r\n--evil' }), RangeError);
    assert.throws(() => multipartBody({ ...file, filename: 'a".wav' }, {}), RangeError);
    assert.throws(() => multipartBody(file, { 'mo\ndel': 'x' }), RangeError);
  });
});
