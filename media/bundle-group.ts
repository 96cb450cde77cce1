// werift lists every m-line in its BUNDLE group, rejected ones (port 0: a room participant's track
// that was removed) included. JSEP (RFC 8829 §5.2.2, §5.3.1) leaves rejected m-lines out, and
// Chromium refuses an answer whose group names a mid its offer no longer bundled. Applied to the
// SDP we send; werift's own state is unaffected.

export function withoutRejectedFromBundle(sdp: string): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(eol);
  const rejected = new Set<string>();
  let inRejected = false;
  for (const line of lines) {
    if (line.startsWith('m=')) inRejected = /^m=\S+ 0 /.test(line);
    else if (inRejected && line.startsWith('a=mid:')) rejected.add(line.slice('a=mid:'.length).trim());
  }
  if (rejected.size === 0) return sdp;
  return lines
    .map((line) => {
      if (!line.startsWith('a=group:BUNDLE')) return line;
      const mids = line.slice('a=group:BUNDLE'.length).trim().split(/\s+/).filter((mid) => mid && !rejected.has(mid));
      return `a=group:BUNDLE ${mids.join(' ')}`;
    })
    .join(eol);
}
