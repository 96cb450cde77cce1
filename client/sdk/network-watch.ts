// Reports network changes the browser knows about: back online, or a different connection
// (Network Information API, where available). Either can leave the old path dead before ICE or
// TCP notice.

/** Calls `onChange` on every network change; returns the function that stops watching. */
export function watchNetwork(onChange: () => void): () => void {
  const connection = (navigator as Navigator & { connection?: EventTarget }).connection;
  window.addEventListener('online', onChange);
  connection?.addEventListener('change', onChange);
  return () => {
    window.removeEventListener('online', onChange);
    connection?.removeEventListener('change', onChange);
  };
}
