// The signed-in session, shared by the try-it page and the dashboard through one localStorage
// key: load, save, clear, and one refresh of the token pair for every caller waiting on a 401.

export const SESSION_KEY = 'aisocial.session';

/** The stored session, or null (a damaged entry counts as none). */
export function loadSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) || 'null');
    if (session && typeof session.access_token === 'string' && session.user) return session;
  } catch (_) {
    // A damaged entry counts as no session.
  }
  return null;
}

export function saveSession(pair) {
  const session = {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    user: pair.user,
  };
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

export function clearSession() {
  localStorage.removeItem(SESSION_KEY);
}

let refreshing = null;

/** A fresh Idempotency-Key (getRandomValues works on plain http too, unlike randomUUID). */
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const realSleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Attempts at a refresh before the page gives up for now (the session stays). */
const REFRESH_ATTEMPTS = 4;

/**
 * The refresh could not be made now (rate limited, the server busy or unreachable): the
 * session is kept, and the caller's request fails with this status and wait.
 */
export class RefreshDeferred extends Error {
  constructor(status, retryAfter) {
    super('your session could not be renewed just now; try again shortly');
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * Rotates the pair once for everyone waiting; resolves to the new session, or to null when the
 * server refused the refresh token (401: the session is over). Anything else (429, 503, a
 * network error) is retried with backoff, honouring Retry-After, and then rejects with
 * RefreshDeferred: a neighbour behind the same address spending the sign-in limit, or a busy
 * server, never signs anyone out. Two refreshes with the same refresh token would count as
 * reuse and revoke the session, so a pair another page already rotated is taken as it is. One
 * Idempotency-Key covers the rotation and its retries: when an answer is lost, the retry gets
 * the same new token instead of counting as reuse.
 */
export function refreshSession(failedToken, { sleep = realSleep } = {}) {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    const current = loadSession();
    if (!current) return null;
    if (current.access_token !== failedToken) return current;
    const key = newKey();
    let status = 0;
    let after = NaN;
    for (let attempt = 0; attempt < REFRESH_ATTEMPTS; attempt += 1) {
      let res = null;
      try {
        res = await fetch('/api/v1/auth/refresh', {
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            Accept: 'application/json',
            'Idempotency-Key': key,
          },
          body: JSON.stringify({ refresh_token: current.refresh_token }),
          cache: 'no-store',
        });
      } catch (_) {
        res = null;
      }
      if (res && res.ok) return saveSession(await res.json());
      if (res && res.status === 401) return null;
      status = res ? res.status : 0;
      after = Number(res && res.headers.get('Retry-After'));
      const backoff = Math.min(1000 * 2 ** attempt, 8000);
      if (attempt + 1 < REFRESH_ATTEMPTS) {
        await sleep(Math.min(Number.isFinite(after) && after > 0 ? after * 1000 : backoff, 8000));
      }
    }
    throw new RefreshDeferred(status, Number.isFinite(after) && after > 0 ? after : undefined);
  })();
  const done = () => {
    refreshing = null;
  };
  refreshing.then(done, done);
  return refreshing;
}

/**
 * fetch() with the session's access token; a 401 refreshes the pair once and sends again.
 * Resolves to the Response (the caller reads the status), or null when nobody is signed in or
 * the session is over. A refresh that cannot be made now rejects with RefreshDeferred.
 */
export async function authorizedFetch(path, init = {}) {
  const send = (token) =>
    fetch(path, {
      ...init,
      headers: { Accept: 'application/json', ...(init.headers || {}), Authorization: 'Bearer ' + token },
      cache: 'no-store',
    });
  let session = loadSession();
  if (!session) return null;
  let res = await send(session.access_token);
  if (res.status !== 401) return res;
  session = await refreshSession(session.access_token);
  if (!session) return null;
  return send(session.access_token);
}
