// Toast-like notices in one polite live region: `notify` from anywhere, `<Notices />` once.
import { useSyncExternalStore } from 'react';

type Notice = { id: number; text: string; kind: 'ok' | 'error' };
let notices: Notice[] = [];
let noticeSeq = 0;
const noticeListeners = new Set<() => void>();
function emitNotices() {
  for (const fn of noticeListeners) fn();
}
export function notify(text: string, kind: 'ok' | 'error' = 'ok'): void {
  const id = ++noticeSeq;
  notices = [...notices, { id, text, kind }].slice(-3);
  emitNotices();
  setTimeout(() => {
    notices = notices.filter((n) => n.id !== id);
    emitNotices();
  }, 5000);
}
export function Notices() {
  const list = useSyncExternalStore(
    (fn) => {
      noticeListeners.add(fn);
      return () => {
        noticeListeners.delete(fn);
      };
    },
    () => notices,
  );
  return (
    <div className="toasts" role="status" aria-live="polite">
      {list.map((n) => (
        <p key={n.id} className={`toast ${n.kind}`}>
          {n.text}
        </p>
      ))}
    </div>
  );
}
