// A secret shown exactly once (a new or rotated key, a new management token): the secret,
// focused so keyboard users can copy it at once, a Copy button and what became of the copy.
import { useEffect, useRef, useState } from 'react';

export async function copyText(text: string, fallbackEl: HTMLElement | null): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall through */
  }
  if (fallbackEl) {
    const range = document.createRange();
    range.selectNodeContents(fallbackEl);
    const sel = window.getSelection();
    sel?.removeAllRanges();
    sel?.addRange(range);
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
  return false;
}

/** `what` names the secret in the fallback hint ("Select the key above …"). */
export function SecretCopy({ secret, what }: { secret: string; what: string }) {
  const secretRef = useRef<HTMLElement>(null);
  const [copied, setCopied] = useState<null | boolean>(null);
  useEffect(() => secretRef.current?.focus(), []);
  return (
    <>
      <div className="secret-row">
        <code className="secret" ref={secretRef}>
          {secret}
        </code>
        <button
          type="button"
          className="primary"
          onClick={async () => setCopied(await copyText(secret, secretRef.current))}
        >
          Copy
        </button>
      </div>
      <p className="muted copy-state" aria-live="polite">
        {copied === true
          ? 'Copied to the clipboard.'
          : copied === false
            ? `Select the ${what} above and copy it by hand.`
            : ''}
      </p>
    </>
  );
}
