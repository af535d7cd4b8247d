// The dashboard's moderation panel: the open reports, each with its actions (dismiss, remove the
// post, suspend the reported user), and the suspended accounts, each with "unsuspend". It reads
// /api/v1/admin/reports and /api/v1/admin/users/suspended every few seconds with the signed-in
// moderator's or admin's token; every action goes through the API, which audits it.

import { authorizedFetch } from '/static/session.js';

const REFRESH_MS = 3000;

const $ = (id) => document.getElementById(id);

function text(tag, value, className) {
  const el = document.createElement(tag);
  el.textContent = value == null ? '' : String(value);
  if (className) el.className = className;
  return el;
}

function button(label, action, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.dataset.action = action;
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await onClick();
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

async function problemOf(res) {
  try {
    const problem = await res.json();
    return problem.detail || problem.title || `the server answered ${res.status}`;
  } catch (_) {
    return `the server answered ${res.status}`;
  }
}

function say(message, failing) {
  const status = $('moderation-status');
  status.textContent = message;
  status.dataset.state = failing ? 'failing' : 'ok';
}

async function act(path, body, done) {
  const res = await authorizedFetch(path, {
    method: 'POST',
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res) return say('sign in again to moderate', true);
  if (!res.ok) return say(await problemOf(res), true);
  say(done, false);
  await refresh();
}

function reportRow(report) {
  const tr = document.createElement('tr');
  tr.dataset.report = String(report.id);
  tr.append(
    text('td', report.id, 'num'),
    text('td', new Date(report.created_at).toLocaleString()),
    text('td', report.reporter ? '@' + report.reporter.handle : '(gone)'),
    text('td', '@' + report.target.handle + (report.target_suspended ? ' (suspended)' : '')),
    text('td', report.reason),
    text('td', report.post_body ? `“${report.post_body}”` : '(the account)', 'reported-text'),
    text('td', report.comment),
  );
  const actions = document.createElement('td');
  actions.className = 'actions';
  const resolve = (action, done) => () =>
    act(`/api/v1/admin/reports/${report.id}/resolve`, { action }, done);
  actions.append(button('Dismiss', 'dismiss', resolve('dismiss', `report ${report.id} dismissed`)));
  if (report.post_id != null) {
    actions.append(button('Remove post', 'remove_post', resolve('remove_post', `post ${report.post_id} removed`)));
  }
  if (!report.target_suspended) {
    actions.append(button('Suspend', 'suspend', resolve('suspend', `@${report.target.handle} suspended`)));
  }
  tr.append(actions);
  return tr;
}

function suspendedRow(account) {
  const tr = document.createElement('tr');
  tr.dataset.handle = account.handle;
  tr.append(
    text('td', '@' + account.handle),
    text('td', account.display_name),
    text('td', new Date(account.suspended_at).toLocaleString()),
  );
  const actions = document.createElement('td');
  actions.className = 'actions';
  actions.append(
    button('Unsuspend', 'unsuspend', () =>
      act(`/api/v1/admin/users/${encodeURIComponent(account.handle)}/unsuspend`, null, `@${account.handle} unsuspended`),
    ),
  );
  tr.append(actions);
  return tr;
}

function fill(tableId, items, toRow, empty) {
  const body = $(tableId).querySelector('tbody');
  body.replaceChildren(...items.map(toRow));
  if (items.length === 0) {
    const tr = document.createElement('tr');
    const td = text('td', empty, 'muted');
    td.colSpan = $(tableId).querySelectorAll('thead th').length;
    tr.append(td);
    body.append(tr);
  }
}

let timer = null;

async function refresh() {
  clearTimeout(timer);
  try {
    const [reports, suspended] = await Promise.all([
      authorizedFetch('/api/v1/admin/reports?status=open&limit=100'),
      authorizedFetch('/api/v1/admin/users/suspended?limit=100'),
    ]);
    if (!reports || !suspended) return;
    if (reports.status === 403) {
      $('moderation').hidden = true;
      return;
    }
    if (!reports.ok) throw new Error(await problemOf(reports));
    if (!suspended.ok) throw new Error(await problemOf(suspended));
    const queue = await reports.json();
    const accounts = await suspended.json();
    $('moderation').hidden = false;
    fill('reports-table', queue.items, reportRow, 'No open reports.');
    fill('suspended-table', accounts.items, suspendedRow, 'No suspended accounts.');
    $('moderation').dataset.loaded = String(Number($('moderation').dataset.loaded || 0) + 1);
  } catch (e) {
    say(`the moderation lists could not be read: ${e.message}`, true);
  } finally {
    timer = setTimeout(refresh, REFRESH_MS);
  }
}

/** Starts reading the moderation lists. */
export function startModeration() {
  refresh();
}
