// A secret shown exactly once (a new or rotated key, a new management token): the secret,
// focused so keyboard users can copy it at once, a Copy button and what became of the copy,
// and the dialog around them.
import { type ReactNode, useEffect, useRef, useState } from 'react';
import { PrimaryButton } from './controls';
import { Modal } from './dialogs';

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

/**
 * The dialog that shows a new secret once: the warning (what to do `ifLost`), an optional
 * `note`, the secret with its Copy button, how to use it (`children`) and Done.
 */
export function SecretDialogFrame({
  title,
  what,
  secret,
  ifLost,
  note,
  onClose,
  children,
}: {
  title: string;
  what: string;
  secret: string;
  ifLost: string;
  note?: ReactNode;
  onClose: () => void;
  children: ReactNode;
}) {
  return (
    <Modal title={title} onClose={onClose} className="secret-dialog">
      <p className="notice warn" role="note">
        <strong>Copy this {what} now. It will not be shown again.</strong> MoleAPI stores only a hash of it;
        if you lose it, {ifLost}
      </p>
      {note}
      <SecretCopy secret={secret} what={what} />
      <h3>Use it</h3>
      {children}
      <div className="actions">
        <PrimaryButton onClick={onClose}>Done</PrimaryButton>
      </div>
    </Modal>
  );
}
