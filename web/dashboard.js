// The operator dashboard: polls GET /admin/live every second with the admin's token (the one the
// try-it page keeps in localStorage) and draws the last two minutes.

import { LineChart, compact } from '/static/chart.js';
import { SESSION_KEY, RefreshDeferred, loadSession, refreshSession } from '/static/session.js';
import { startModeration } from '/static/moderation.js';

const POLL_MS = 1000;
const POLL_TIMEOUT_MS = 4000;

const $ = (id) => document.getElementById(id);

class PollError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function getLive() {
  const send = async (token) => {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), POLL_TIMEOUT_MS);
    try {
      return await fetch('/admin/live', {
        headers: { Accept: 'application/json', Authorization: 'Bearer ' + token },
        cache: 'no-store',
        signal: abort.signal,
      });
    } catch (e) {
      throw new PollError(0, e.name === 'AbortError' ? 'the server did not answer in time' : 'the server cannot be reached');
    } finally {
      clearTimeout(timer);
    }
  };
  let session = loadSession();
  if (!session) throw new PollError(401, 'not signed in');
  let res = await send(session.access_token);
  if (res.status === 401) {
    try {
      session = await refreshSession(session.access_token);
    } catch (e) {
      if (e instanceof RefreshDeferred) throw new PollError(e.status || 503, e.message);
      throw e;
    }
    if (!session) throw new PollError(401, 'your session has ended; sign in again');
    res = await send(session.access_token);
  }
  if (!res.ok) {
    let detail = `the server answered ${res.status}`;
    try {
      const problem = await res.json();
      if (problem && problem.detail) detail = problem.detail;
    } catch (_) {
      // Not a problem document.
    }
    throw new PollError(res.status, detail);
  }
  return res.json();
}

// ---------------------------------------------------------------------------------------------
// Charts and tables.

const charts = {};

function makeCharts() {
  const seconds = (v) => (v < 10 ? compact(Math.round(v * 100) / 100) : compact(v));
  charts.mailboxes = new LineChart($('chart-mailboxes'));
  charts.age = new LineChart($('chart-age'), { unit: 's', format: seconds });
  charts.handled = new LineChart($('chart-handled'), { unit: '/s' });
  charts.latency = new LineChart($('chart-latency'), {
    unit: 'ms',
    format: (v) => (v < 10 ? compact(Math.round(v * 100) / 100) : compact(v)),
  });
  charts.connections = new LineChart($('chart-connections'));
  charts.ai = new LineChart($('chart-ai'), {
    min: 0,
    max: 100,
    format: (v) => compact(Math.round(v * 10) / 10),
    latestText: (name, v) => {
      const b = budget.get(name);
      if (v === null || !b) return '–';
      return `${compact(Math.round(v * 10) / 10)} % (${compact(b.used)} / ${compact(b.max)})`;
    },
    unit: '%',
  });
  charts.aiQueue = new LineChart($('chart-ai-queue'));
}

const budget = new Map();

function num(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function cell(text, numeric) {
  const td = document.createElement('td');
  td.textContent = text;
  if (numeric) td.className = 'num';
  return td;
}

function row(cells, hot) {
  const tr = document.createElement('tr');
  if (hot) tr.className = 'hot';
  for (const [text, numeric] of cells) tr.append(cell(text, numeric));
  return tr;
}

function secondsText(v) {
  const n = num(v);
  return n === null ? '–' : n.toFixed(n < 10 ? 3 : 1);
}

function setStat(id, text, level) {
  const node = $(id);
  node.textContent = text;
  const box = node.closest('.stat');
  if (box) {
    if (level) box.dataset.state = level;
    else delete box.dataset.state;
  }
}

function render(live) {
  const at = num(live.at_ms) || Date.now();
  const actors = Array.isArray(live.actors) ? live.actors : [];
  const depth = {};
  const age = {};
  const handled = {};
  for (const a of actors) {
    depth[a.kind] = num(a.mailbox_depth);
    age[a.kind] = num(a.oldest_message_age_seconds);
    handled[a.kind] = num(a.handled_per_second);
  }
  charts.mailboxes.push(at, depth);
  charts.age.push(at, age);
  charts.handled.push(at, handled);

  const latency = live.delivery_latency_seconds || {};
  const ms = (v) => (num(v) === null ? null : v * 1000);
  charts.latency.push(at, { p50: ms(latency.p50), p99: ms(latency.p99) });

  const connections = live.connections || {};
  charts.connections.push(at, {
    websockets: num(connections.websockets),
    online_users: num(connections.online_users),
  });

  const ai = live.ai || {};
  budget.clear();
  const used = {};
  for (const b of Array.isArray(ai.budget) ? ai.budget : []) {
    budget.set(b.limit, b);
    used[b.limit] = num(b.max) ? (num(b.used) || 0) / b.max * 100 : null;
  }
  charts.ai.push(at, used);
  charts.aiQueue.push(at, { queued: num(ai.queued), in_flight: num(ai.in_flight) });

  // Summary.
  const sessions = live.sessions || {};
  setStat('stat-node', live.node || '–');
  setStat('stat-websockets', compact(num(connections.websockets)));
  setStat('stat-online', compact(num(connections.online_users)));
  const slow = num(sessions.slow);
  setStat('stat-slow', compact(slow), slow ? 'bad' : 'ok');
  setStat('stat-deliveries', compact(num(latency.per_second)));
  let aiText = ai.status || '–';
  if (num(ai.paused_seconds)) aiText += ` (paused ${Math.ceil(ai.paused_seconds)} s)`;
  setStat('ai-status', aiText, ai.status === 'ok' ? 'ok' : ai.status ? 'warn' : null);

  // Tables.
  const sorted = [...actors].sort((a, b) => String(a.kind).localeCompare(String(b.kind)));
  $('actors-table').tBodies[0].replaceChildren(...sorted.map((a) => row([
    [a.kind],
    [compact(num(a.actors)), true],
    [compact(num(a.mailbox_depth)), true],
    [secondsText(a.oldest_message_age_seconds), true],
    [compact(num(a.handled_per_second)), true],
    [compact(num(a.messages_handled_total)), true],
  ], num(a.oldest_message_age_seconds) > 1)));

  const deepest = Array.isArray(sessions.deepest) ? sessions.deepest : [];
  $('deepest-sessions').tBodies[0].replaceChildren(...deepest.map((s) => row([
    [String(s.session_id)],
    [s.handle ? '@' + s.handle : String(s.user_id)],
    [s.node || '–'],
    [compact(num(s.depth)), true],
    [secondsText(s.oldest_message_age_seconds), true],
  ], num(s.depth) >= (num(sessions.slow_threshold) || Infinity))));
  if (!deepest.length) {
    const none = row([['no session has frames waiting'], [''], [''], [''], ['']]);
    none.cells[0].colSpan = 5;
    for (const extra of [...none.cells].slice(1)) extra.remove();
    none.className = 'muted';
    $('deepest-sessions').tBodies[0].replaceChildren(none);
  }
  $('sessions-summary').textContent = `${compact(num(sessions.open))} open, ${compact(slow)} slow ` +
    `(over ${compact(num(sessions.slow_threshold))} queued frames)`;

  $('ai-budget').tBodies[0].replaceChildren(...[...budget.values()].map((b) => row([
    [b.limit],
    [compact(num(b.used)), true],
    [compact(num(b.max)), true],
    [num(b.max) ? (b.used / b.max * 100).toFixed(1) : '–', true],
  ], num(b.max) && b.used >= b.max)));
  if (!budget.size) {
    const none = row([['the budget could not be read']]);
    none.cells[0].colSpan = 4;
    none.className = 'muted';
    $('ai-budget').tBodies[0].replaceChildren(none);
  }

  const byDepth = Array.isArray(sessions.by_depth) ? sessions.by_depth : [];
  $('depth-histogram').tBodies[0].replaceChildren(...byDepth.map((b) => row([
    [String(b.le)],
    [compact(num(b.sessions)), true],
  ])));
}

// ---------------------------------------------------------------------------------------------
// Polling.

let updates = 0;
let lastOk = null;
let failingSince = null;
let timer = null;
let stopped = false;

function clock(ms) {
  return new Date(ms).toLocaleTimeString();
}

function needAuth(reason) {
  stopped = true;
  clearTimeout(timer);
  $('dashboard-main').hidden = true;
  $('auth-needed').hidden = false;
  $('auth-reason').textContent = reason;
  const status = $('last-update');
  status.dataset.state = 'failing';
  status.textContent = 'not signed in as an admin';
}

async function poll() {
  timer = null;
  if (stopped) return;
  const started = Date.now();
  try {
    const live = await getLive();
    render(live);
    updates += 1;
    document.body.dataset.updates = String(updates);
    lastOk = Date.now();
    failingSince = null;
    const status = $('last-update');
    status.dataset.state = 'ok';
    status.dataset.node = live.node || '';
    status.textContent = `updated ${clock(lastOk)} from ${live.node || 'an unnamed node'}`;
  } catch (e) {
    if (e.status === 401) {
      needAuth(loadSession() ? 'Your session has ended.' : 'You are not signed in.');
      return;
    }
    if (e.status === 403) {
      const session = loadSession();
      const who = session && session.user ? '@' + session.user.handle : 'This account';
      needAuth(`${who} is not an admin.`);
      return;
    }
    failingSince = failingSince || Date.now();
    const status = $('last-update');
    status.dataset.state = 'failing';
    status.textContent = `polls failing since ${clock(failingSince)}: ${e.message}` +
      (lastOk ? `; last update ${clock(lastOk)}` : '') + '; retrying';
  }
  if (!stopped) timer = setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
}

function start() {
  stopped = false;
  $('auth-needed').hidden = true;
  $('dashboard-main').hidden = false;
  clearTimeout(timer);
  poll();
}

function main() {
  makeCharts();
  // Signed in (or out) on the try-it page in another tab.
  window.addEventListener('storage', (event) => {
    if (event.key !== SESSION_KEY) return;
    if (loadSession() && stopped) {
      start();
      startModeration();
    }
  });
  if (!loadSession()) {
    needAuth('You are not signed in.');
    return;
  }
  start();
  // Moderators work the queue here too, though only admins see the rest.
  startModeration();
}

main();
