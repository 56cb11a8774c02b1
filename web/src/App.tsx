import { lazy, Suspense, useCallback, useEffect, useState, type ReactElement } from 'react';
import { api, ApiError, errorMessage, onUnauthorized, setCsrfToken, type User } from './api';
import { Link, navigate, useLocation } from './router';
import { SessionContext, useSession, type Session } from './session';
import { TextInput } from './components/controls';
import { FormError, useFormSubmit } from './components/forms';
import { Notices } from './components/notices';
import { timeZone, usdExact } from './format';
import HomePage from './pages/Home';
import { KeysPage } from './pages/Keys';
import { KeyDetailPage } from './pages/KeyDetail';
import { LogsPage } from './pages/Logs';
import { EventsPage } from './pages/Events';

// Pages that pull in the chart library (or are admin-only) load on demand.
const UsagePage = lazy(() => import('./pages/Usage'));
const UsersPage = lazy(() => import('./pages/Users'));
const TokensPage = lazy(() => import('./pages/Tokens'));
const ChannelsPage = lazy(() => import('./pages/Channels'));
const PricingPage = lazy(() => import('./pages/Pricing'));
const SecurityPage = lazy(() => import('./pages/Security'));

interface SessionBody {
  user: User;
  csrf_token: string;
}

type Boot =
  | { state: 'loading' }
  | { state: 'error'; message: string }
  | { state: 'signed-out'; notice?: string }
  | { state: 'signed-in'; user: User };

export function App() {
  const [boot, setBoot] = useState<Boot>({ state: 'loading' });

  const loadSession = useCallback(async () => {
    try {
      const s = await api.get<SessionBody>('/api/auth/session', undefined);
      if (!s?.user) {
        // e.g. a master-key bearer; the console itself needs a user session
        setCsrfToken(null);
        setBoot({ state: 'signed-out' });
        return;
      }
      setCsrfToken(s.csrf_token);
      setBoot({ state: 'signed-in', user: s.user });
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        setCsrfToken(null);
        setBoot({ state: 'signed-out' });
      } else {
        setBoot({ state: 'error', message: errorMessage(err) });
      }
    }
  }, []);

  useEffect(() => {
    void loadSession();
  }, [loadSession]);

  useEffect(
    () =>
      onUnauthorized(() => {
        setCsrfToken(null);
        setBoot((b) =>
          b.state === 'signed-in'
            ? { state: 'signed-out', notice: 'Your session has ended. Please sign in again.' }
            : b,
        );
      }),
    [],
  );

  if (boot.state === 'loading') {
    return (
      <main className="center-page">
        <p role="status">Loading the console…</p>
      </main>
    );
  }
  if (boot.state === 'error') {
    return (
      <main className="center-page">
        <div className="notice error" role="alert">
          <p>The console could not reach the gateway: {boot.message}</p>
          <button type="button" onClick={() => void loadSession()}>
            Try again
          </button>
        </div>
      </main>
    );
  }
  if (boot.state === 'signed-out') {
    return (
      <SignIn
        notice={boot.notice}
        onSignedIn={(user) => {
          setBoot({ state: 'signed-in', user });
        }}
      />
    );
  }

  const session: Session = {
    user: boot.user,
    signOut: async (notice = 'You are signed out.') => {
      try {
        await api.post('/api/auth/logout');
      } catch {
        /* the session is gone either way */
      }
      setCsrfToken(null);
      setBoot({ state: 'signed-out', notice });
    },
    refresh: loadSession,
  };

  return (
    <SessionContext.Provider value={session}>
      <Shell />
    </SessionContext.Provider>
  );
}

function SignIn({ notice, onSignedIn }: { notice?: string; onSignedIn: (u: User) => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');

  useEffect(() => {
    document.title = 'Sign in · MoleAPI';
  }, []);

  const { busy, error, submit } = useFormSubmit(
    () =>
      api.post<SessionBody>('/api/auth/login', { username, password }).then((s) => {
        setCsrfToken(s.csrf_token);
        onSignedIn(s.user);
      }),
    (err) =>
      err instanceof ApiError && err.status === 401 ? 'Wrong username or password.' : errorMessage(err),
  );

  return (
    <main className="center-page">
      <form className="card signin" onSubmit={submit} aria-labelledby="signin-title">
        <div className="brand big" aria-hidden="true">
          <span className="logo" /> MoleAPI
        </div>
        <h1 id="signin-title">Sign in to the console</h1>
        {notice ? <p className="notice">{notice}</p> : null}
        <TextInput
          label="Username"
          name="username"
          autoComplete="username"
          required
          value={username}
          onChange={setUsername}
        />
        <TextInput
          label="Password"
          name="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={setPassword}
        />
        <FormError message={error} />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <details className="first-run">
          <summary>First time here?</summary>
          <p>
            Create the first administrator with the master key that the gateway printed on its first start (or
            your <code>MOLE_MASTER_KEY</code>), then sign in with it:
          </p>
          <pre className="code">
            {`curl -X POST ${window.location.origin}/api/users \
  -H "Authorization: Bearer $MOLE_MASTER_KEY" \
  -H "Content-Type: application/json" \
  -d '{"username":"admin","password":"choose-a-long-one","role":"admin"}'`}
          </pre>
        </details>
      </form>
    </main>
  );
}

const NAV: { href: string; label: string; admin?: boolean }[] = [
  { href: '/', label: 'Home' },
  { href: '/keys', label: 'Keys' },
  { href: '/logs', label: 'Logs' },
  { href: '/usage', label: 'Usage' },
  { href: '/tokens', label: 'Tokens' },
  { href: '/notifications', label: 'Notifications' },
  { href: '/users', label: 'Users', admin: true },
  { href: '/channels', label: 'Channels', admin: true },
  { href: '/pricing', label: 'Pricing', admin: true },
  // Users can open it too (their own keys' entries); the link is for admins.
  { href: '/security', label: 'Security', admin: true },
];

function Shell() {
  const { path } = useLocation();
  const session = useSession();
  const isAdmin = session.user.role === 'admin';

  useEffect(() => {
    if (path === '/login' || path === '/index.html') navigate('/', { replace: true });
  }, [path]);

  const section = '/' + (path.split('/')[1] ?? '');
  const current = NAV.find((n) => n.href === section);
  useEffect(() => {
    document.title = `${current?.label ?? 'Console'} · MoleAPI`;
  }, [current]);

  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden="true" /> MoleAPI
        </div>
        <nav aria-label="Main" className="mainnav">
          <ul>
            {NAV.filter((n) => !n.admin || isAdmin).map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={section === n.href ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span className="who-name">
            {session.user.username} <span className="badge">{session.user.role}</span>
          </span>
          <span className="muted who-balance" title="Account balance">
            Balance {usdExact(session.user.balance)}
          </span>
          <button type="button" onClick={() => void session.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p role="status">Loading page…</p>}>
          <Route path={path} isAdmin={isAdmin} />
        </Suspense>
      </main>
      <footer className="foot muted">
        Times are shown in your time zone ({timeZone}). Amounts are in US dollars.
      </footer>
      <Notices />
    </div>
  );
}

function Route({ path, isAdmin }: { path: string; isAdmin: boolean }) {
  const parts = path.split('/').filter(Boolean);
  const [head, id] = parts;
  if (!head || head === 'login' || head === 'index.html') return <HomePage />;
  if (head === 'keys') {
    if (id) return <KeyDetailPage id={decodeURIComponent(id)} />;
    return <KeysPage />;
  }
  if (head === 'logs') return <LogsPage />;
  if (head === 'usage') return <UsagePage />;
  if (head === 'security') return <SecurityPage />;
  if (head === 'tokens') return <TokensPage />;
  if (head === 'notifications') return <EventsPage />;
  const adminPages: Record<string, ReactElement> = {
    users: <UsersPage />,
    channels: <ChannelsPage />,
    pricing: <PricingPage />,
  };
  if (head in adminPages) {
    if (!isAdmin) {
      return (
        <div className="notice error" role="alert">
          This page is for administrators.
        </div>
      );
    }
    return adminPages[head] ?? null;
  }
  return (
    <div className="empty">
      <h1>Page not found</h1>
      <p>
        There is nothing at <code>{path}</code>. <Link href="/keys">Back to the key list</Link>.
      </p>
    </div>
  );
}
