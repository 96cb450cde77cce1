// A minimal browser-side typed event emitter (Node's EventEmitter is not available in the browser).
type Listener<A extends unknown[]> = (...args: A) => void;
// Storage is untyped; on/off/safeEmit are the typed doors in and out.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type StoredListener = (...args: any[]) => void;

export class TypedEmitter<Events extends Record<string, unknown[]>> {
  readonly #listeners = new Map<keyof Events, Set<StoredListener>>();

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return this;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    this.#listeners.get(event)?.delete(listener);
    return this;
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const wrapped: Listener<Events[K]> = (...args) => {
      this.off(event, wrapped);
      listener(...args);
    };
    return this.on(event, wrapped);
  }

  removeAllListeners(): this {
    this.#listeners.clear();
    return this;
  }

  /** Calls every listener; a throwing listener is reported and never stops the others or the caller. */
  protected safeEmit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        listener(...args);
      } catch (err) {
        console.error(`listener for "${String(event)}" threw`, err);
      }
    }
  }
}
