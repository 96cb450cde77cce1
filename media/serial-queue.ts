// Runs async operations one at a time, in order. werift does not serialize signaling the way a
// browser does: a candidate applied during setRemoteDescription fails. Each peer owns one queue.
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(operation, operation);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
