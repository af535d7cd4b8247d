// The page's token refresh (web/session.js) against scripted answers: only a 401 ends the
// session; 429, 503 and network errors are retried with backoff and then leave it in place.
// Run with `node --test web/tests/` (scripts/test.sh does).

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

const store = new Map();
globalThis.localStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k),
};

const { RefreshDeferred, loadSession, refreshSession, saveSession } = await import('../session.js');

const pair = (n) => ({ access_token: `at${n}`, refresh_token: `rt${n}`, user: { handle: 'ann' } });

/** Answers the refreshes in order; records what was sent. */
function script(answers) {
  const sent = [];
  globalThis.fetch = async (url, init) => {
    sent.push({ url, key: init.headers['Idempotency-Key'], body: JSON.parse(init.body) });
    const answer = answers.shift();
    if (answer === 'network') throw new TypeError('failed to fetch');
    const headers = new Map(Object.entries(answer.headers || {}));
    return {
      ok: answer.status >= 200 && answer.status < 300,
      status: answer.status,
      headers: { get: (name) => headers.get(name) ?? null },
      json: async () => answer.body,
    };
  };
  return sent;
}

const waits = [];
const sleep = async (ms) => {
  waits.push(ms);
};

beforeEach(() => {
  store.clear();
  waits.length = 0;
  saveSession(pair(1));
});

test('a rate-limited refresh waits as told and then succeeds', async () => {
  const sent = script([
    { status: 429, headers: { 'Retry-After': '2' } },
    { status: 503, headers: { 'Retry-After': '1' } },
    { status: 200, body: pair(2) },
  ]);
  const session = await refreshSession('at1', { sleep });
  assert.equal(session.access_token, 'at2');
  assert.equal(loadSession().refresh_token, 'rt2');
  assert.deepEqual(waits, [2000, 1000]);
  assert.equal(new Set(sent.map((s) => s.key)).size, 1, 'one Idempotency-Key for the retries');
});

test('a refresh that keeps failing leaves the session in place', async () => {
  script(['network', { status: 429 }, { status: 503 }, { status: 429, headers: { 'Retry-After': '30' } }]);
  await assert.rejects(refreshSession('at1', { sleep }), (e) => {
    assert.ok(e instanceof RefreshDeferred);
    assert.equal(e.status, 429);
    assert.equal(e.retryAfter, 30);
    return true;
  });
  assert.equal(loadSession().access_token, 'at1', 'the session is kept');
  assert.deepEqual(waits, [1000, 2000, 4000], 'exponential backoff without Retry-After');
});

test('only a 401 ends the session', async () => {
  script([{ status: 401 }]);
  assert.equal(await refreshSession('at1', { sleep }), null);
});

test('concurrent callers share one refresh', async () => {
  const sent = script([{ status: 200, body: pair(3) }]);
  const [a, b] = await Promise.all([
    refreshSession('at1', { sleep }),
    refreshSession('at1', { sleep }),
  ]);
  assert.equal(a.access_token, 'at3');
  assert.equal(b.access_token, 'at3');
  assert.equal(sent.length, 1);
});
