// Raw 16-bit little-endian mono PCM arriving in chunks of any size (HTTP bodies, base64 WebSocket
// messages): samples out, an odd trailing byte kept for the next chunk. Copies bytes straight into
// the sample array (about 10x cheaper than assembling samples byte by byte).
import { endianness } from 'node:os';

const SWAP_BYTES = endianness() === 'BE';

export class PcmDecoder {
  #carry: Buffer | undefined;

  push(chunk: Uint8Array): Int16Array {
    let bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.#carry) bytes = Buffer.concat([this.#carry, bytes]);
    this.#carry = bytes.length % 2 === 1 ? Buffer.from(bytes.subarray(bytes.length - 1)) : undefined;
    const samples = new Int16Array(bytes.length >> 1);
    const view = Buffer.from(samples.buffer);
    view.set(bytes.subarray(0, view.length));
    if (SWAP_BYTES) view.swap16();
    return samples;
  }
}
