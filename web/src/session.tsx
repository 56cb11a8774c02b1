import { createContext, useContext } from 'react';
import type { User } from './api';

export interface Session {
  user: User;
  /** Ends the session; `notice` is shown above the sign-in form (default: "You are signed out."). */
  signOut: (notice?: string) => Promise<void>;
  /** Re-read the signed-in user (balance changes after top-ups etc.). */
  refresh: () => Promise<void>;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in view');
  return s;
}

export function useIsAdmin(): boolean {
  return useSession().user.role === 'admin';
}
