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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Rotates the pair once for everyone waiting; resolves to the new session or null. Two
 * refreshes with the same refresh token would count as reuse and revoke the session, so a
 * pair another page already rotated is taken as it is. One Idempotency-Key covers the rotation
 * and its retries: when an answer is lost (a network error, a 503), the retry gets the same new
 * token instead of counting as reuse.
 */
export function refreshSession(failedToken) {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    const current = loadSession();
    if (!current) return null;
    if (current.access_token !== failedToken) return current;
    const key = newKey();
    for (let attempt = 0; attempt < 3; attempt += 1) {
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
      if (res && res.status !== 503) return null;
      const after = Number(res && res.headers.get('Retry-After'));
      await sleep(Math.min(Number.isFinite(after) && after > 0 ? after * 1000 : 1000, 5000));
    }
    return null;
  })();
  refreshing.finally(() => {
    refreshing = null;
  });
  return refreshing;
}
