// The try-it client: sign-in, timeline, posts, likes, replies, follows, notifications, the AI,
// and live updates over one websocket. Vanilla JS, no dependencies. Every piece of user data
// reaches the page through textContent, never as HTML.

import {
  SESSION_KEY,
  RefreshDeferred,
  clearSession,
  loadSession,
  refreshSession,
  saveSession,
} from '/static/session.js';

const MAX_POST_CHARS = 1000;
const CALLBACK_PATH = '/api/v1/auth/google/callback';

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// The API: bearer token, one refresh on 401, problem documents as errors.

class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    const detail = (problem && problem.detail) || `the server answered ${status}`;
    super(detail);
    this.status = status;
    this.code = (problem && problem.code) || 'http_' + status;
    this.field = problem && problem.field;
    this.retryAfter = retryAfter;
  }

  /** What to show the user. */
  get userMessage() {
    let text = this.message;
    if (this.field && !text.includes(this.field)) text += ` (${this.field})`;
    if (this.status === 429 || this.status === 503) {
      if (this.retryAfter) text += ` Try again in ${this.retryAfter} s.`;
    }
    return text;
  }
}

async function readBody(res) {
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try {
      return await res.json();
    } catch (_) {
      return null;
    }
  }
  const text = await res.text();
  return text ? { detail: text.slice(0, 300) } : null;
}

/**
 * Calls the API. Resolves to `{status, data, headers}` for 2xx; throws an ApiError otherwise
 * (and a TypeError-turned-ApiError when the network fails).
 */
async function api(method, path, { body, headers = {}, auth = true } = {}) {
  const send = (token) => {
    const h = { Accept: 'application/json', ...headers };
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (token) h.Authorization = 'Bearer ' + token;
    return fetch(path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  };
  let session = auth ? loadSession() : null;
  let res;
  try {
    res = await send(session && session.access_token);
    if (res.status === 401 && session) {
      let fresh;
      try {
        fresh = await refreshSession(session.access_token);
      } catch (e) {
        if (e instanceof RefreshDeferred) {
          throw new ApiError(e.status || 503, { detail: e.message }, e.retryAfter);
        }
        throw e;
      }
      if (!fresh) {
        signedOutElsewhere('Your session has ended; sign in again.');
        throw new ApiError(401, { detail: 'your session has ended; sign in again' });
      }
      session = fresh;
      res = await send(fresh.access_token);
      if (res.status === 401) {
        signedOutElsewhere('Your session has ended; sign in again.');
      }
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(0, { detail: 'the server cannot be reached; check your connection' });
  }
  const data = await readBody(res);
  if (!res.ok) {
    const retry = parseInt(res.headers.get('Retry-After') || '', 10);
    throw new ApiError(res.status, data, Number.isFinite(retry) ? retry : undefined);
  }
  return { status: res.status, data, headers: res.headers };
}

/** A random UUID, also where crypto.randomUUID is missing (pages not on a secure origin). */
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers.

/** `el('p', {class: 'x', text: 'y', data: {postId: 1}, attrs: {title: 'z'}}, child, …)` */
function el(tag, opts = {}, ...children) {
  const node = document.createElement(tag);
  if (opts.class) node.className = opts.class;
  if (opts.text !== undefined) node.textContent = String(opts.text);
  if (opts.data) for (const [k, v] of Object.entries(opts.data)) node.dataset[k] = String(v);
  if (opts.attrs) for (const [k, v] of Object.entries(opts.attrs)) node.setAttribute(k, String(v));
  if (opts.type) node.type = opts.type;
  for (const child of children) if (child) node.append(child);
  return node;
}

function show(node, text) {
  if (text !== undefined) node.textContent = text;
  node.hidden = false;
}

function hide(node) {
  node.hidden = true;
}

/** A passing note at the top of the page (a mute or a block done). */
function showStatus(text) {
  show($('page-status'), text);
}

function showError(node, error) {
  show(node, error instanceof ApiError ? error.userMessage : String(error && error.message ? error.message : error));
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });

function ago(iso) {
  const then = Date.parse(iso);
  if (!Number.isFinite(then)) return '';
  const s = Math.round((then - Date.now()) / 1000);
  if (Math.abs(s) < 45) return 'just now';
  const m = Math.round(s / 60);
  if (Math.abs(m) < 60) return relative.format(m, 'minute');
  const h = Math.round(m / 60);
  if (Math.abs(h) < 24) return relative.format(h, 'hour');
  const d = Math.round(h / 24);
  if (Math.abs(d) < 7) return relative.format(d, 'day');
  return new Date(then).toLocaleDateString();
}

function normaliseHandle(raw) {
  return String(raw || '').trim().replace(/^@/, '').toLowerCase();
}

function chars(text) {
  return [...text].length;
}

// ---------------------------------------------------------------------------------------------
// State.

const state = {
  me: null, // {id, handle, display_name, role}
  posts: new Map(), // post id → post (what the page knows, any list)
  nextCursor: null,
  liked: new Set(), // post ids I like, as the API's `liked_by_me` says (and my own clicks)
  following: new Set(), // handles I follow
  notifications: [],
  lastSeenNotification: 0,
  online: new Set(),
  ai: new Map(), // request id → {text, done, error, target, postId, replyId}
  composeKey: null, // {text, key}: the Idempotency-Key of the post being sent
  profileHandle: null,
};

function userKey(name) {
  return `aisocial.${name}.${state.me ? state.me.id : 'anon'}`;
}


// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out.

async function setUpSignIn() {
  let methods = { dev: false, google_browser: false };
  try {
    methods = (await api('GET', '/api/v1/auth/methods', { auth: false })).data || methods;
  } catch (e) {
    showError($('signin-error'), e);
  }
  $('dev-form').hidden = !methods.dev;
  $('dev-hint').hidden = !methods.dev;
  $('google-sign-in').hidden = !methods.google_browser;
  $('no-methods').hidden = methods.dev || methods.google_browser;
  if (methods.dev) $('handle').focus();
}

async function devSignIn(event) {
  event.preventDefault();
  const error = $('signin-error');
  hide(error);
  const handle = normaliseHandle($('handle').value);
  if (!/^[a-z0-9_]{3,30}$/.test(handle)) {
    show(error, 'A handle is 3 to 30 characters of a-z, 0-9 and _.');
    return;
  }
  const button = $('sign-in');
  button.disabled = true;
  try {
    const { data } = await api('POST', '/api/v1/auth/dev', { body: { handle }, auth: false });
    saveSession(data);
    await enterApp();
  } catch (e) {
    showError(error, e);
  } finally {
    button.disabled = false;
  }
}

function googleSignIn() {
  const error = $('signin-error');
  hide(error);
  const popup = window.open('/api/v1/auth/google/login', 'aisocial-google', 'popup,width=520,height=680');
  if (!popup) {
    show(error, 'The sign-in window was blocked; allow pop-ups for this site and try again.');
    return;
  }
  const timer = setInterval(() => {
    if (popup.closed) {
      clearInterval(timer);
      if (!loadSession()) show(error, 'The sign-in window was closed before signing in.');
      return;
    }
    let path;
    try {
      path = popup.location.pathname; // throws while the popup is on Google's origin
    } catch (_) {
      return;
    }
    if (path !== CALLBACK_PATH || popup.document.readyState !== 'complete') return;
    clearInterval(timer);
    let answer = null;
    try {
      answer = JSON.parse(popup.document.body.innerText);
    } catch (_) {
      answer = null;
    }
    popup.close();
    if (answer && answer.access_token) {
      saveSession(answer);
      enterApp();
    } else {
      show(error, (answer && answer.detail) || 'Google sign-in did not finish; try again.');
    }
  }, 300);
}

async function signOut() {
  const session = loadSession();
  if (session) {
    try {
      await api('POST', '/api/v1/auth/logout');
    } catch (_) {
      // Signed out locally all the same.
    }
  }
  leaveApp();
}

/** The session is gone (refresh refused, or signed out in another tab). */
function signedOutElsewhere(message) {
  if (!state.me) return;
  leaveApp();
  if (message) show($('signin-error'), message);
}

function leaveApp() {
  clearSession();
  live.stop();
  state.me = null;
  state.posts.clear();
  state.ai.clear();
  $('timeline').replaceChildren();
  $('notifications').replaceChildren();
  hide($('app-panel'));
  hide($('signed-in-as'));
  hide($('sign-out'));
  show($('signin-panel'));
  document.body.dataset.state = 'signed-out';
  setUpSignIn();
}

async function enterApp() {
  const session = loadSession();
  if (!session) return leaveApp();
  state.me = session.user;
  state.liked = new Set();
  state.lastSeenNotification = Number(localStorage.getItem(userKey('seen')) || 0);
  hide($('signin-panel'));
  hide($('signin-error'));
  show($('app-panel'));
  const who = $('signed-in-as');
  who.textContent = '@' + state.me.handle + (state.me.role === 'admin' ? ' (admin)' : '');
  who.dataset.handle = state.me.handle;
  show(who);
  show($('sign-out'));
  document.body.dataset.state = 'signed-in';
  updateComposeCount();
  live.start();
  await Promise.all([loadTimeline({ replace: true }), loadNotifications(), loadFollowing()]);
}

// ---------------------------------------------------------------------------------------------
// Timeline and posts.

function postElements(id) {
  return document.querySelectorAll(`.post[data-post-id="${Number(id)}"]`);
}

function remember(post) {
  state.posts.set(post.id, post);
  // Reads say whether I like a post; live frames (the same for every reader) do not.
  if (post.liked_by_me === true) state.liked.add(post.id);
  else if (post.liked_by_me === false) state.liked.delete(post.id);
  return post;
}

function renderPost(post) {
  remember(post);
  const mine = state.me && post.author.id === state.me.id;
  const li = el('li', {
    class: 'post' + (post.author.handle === 'ai' ? ' by-ai' : '') + (mine ? ' mine' : ''),
    data: { postId: post.id, author: post.author.handle },
  });
  const author = el('button', {
    class: 'post-author link-button',
    text: post.author.display_name && post.author.display_name !== post.author.handle
      ? `${post.author.display_name} @${post.author.handle}`
      : '@' + post.author.handle,
    type: 'button',
    data: { handle: post.author.handle, action: 'profile' },
  });
  const time = el('time', {
    class: 'post-time muted small',
    text: ago(post.created_at),
    attrs: { datetime: post.created_at, title: new Date(post.created_at).toLocaleString() },
  });
  const head = el('div', { class: 'post-head' }, author, time);
  if (post.ai_generated) {
    head.append(el('span', {
      class: 'ai-badge',
      text: 'AI',
      attrs: { title: 'Written by the AI, not a person' },
    }));
  }
  if (post.reply_to) {
    head.append(el('span', { class: 'muted small reply-note', text: `↳ reply to #${post.reply_to}` }));
  }
  const body = el('p', { class: 'post-body', text: post.body });

  const liked = state.liked.has(post.id);
  const likeButton = el('button', {
    class: 'like-button' + (liked ? ' liked' : ''),
    type: 'button',
    data: { action: 'like' },
    attrs: { 'aria-pressed': liked ? 'true' : 'false', title: liked ? 'Unlike' : 'Like' },
  }, el('span', { class: 'like-icon', text: liked ? '♥' : '♡' }), ' ',
  el('span', { class: 'like-count', text: post.like_count }));
  const actions = el('div', { class: 'post-actions' },
    likeButton,
    el('button', { class: 'reply-button', type: 'button', text: 'Reply', data: { action: 'reply' } }),
    el('button', {
      class: 'replies-button',
      type: 'button',
      data: { action: 'replies' },
      attrs: { 'aria-expanded': 'false' },
    }, 'Replies (', el('span', { class: 'reply-count', text: post.reply_count }), ')'),
  );
  const staff = state.me && (state.me.role === 'admin' || state.me.role === 'moderator');
  if (mine || staff) {
    actions.append(el('button', { class: 'delete-button danger', type: 'button', text: 'Delete', data: { action: 'delete' } }));
  }
  if (state.me && !mine) {
    actions.append(
      el('button', { class: 'report-button', type: 'button', text: 'Report', data: { action: 'report' } }),
    );
    if (post.author.handle !== 'ai') {
      actions.append(
        el('button', { class: 'mute-button', type: 'button', text: 'Mute', data: { action: 'mute' } }),
        el('button', { class: 'block-button danger', type: 'button', text: 'Block', data: { action: 'block' } }),
      );
    }
  }
  li.append(
    head,
    body,
    actions,
    el('p', { class: 'error post-error', attrs: { role: 'alert' } }),
    el('p', { class: 'muted small post-note', attrs: { role: 'status' } }),
  );
  li.querySelector('.post-error').hidden = true;
  li.querySelector('.post-note').hidden = true;
  return li;
}

/** Updates every rendering of a post with fresh counts. */
function refreshPostCounts(post) {
  remember(post);
  for (const node of postElements(post.id)) {
    const count = node.querySelector(':scope > .post-actions .like-count');
    if (count) count.textContent = post.like_count;
    const replies = node.querySelector(':scope > .post-actions .reply-count');
    if (replies) replies.textContent = post.reply_count;
  }
}

const refetchTimers = new Map();

/** Re-reads a shown post's counts shortly (replies and likes change them). */
function refetchSoon(id) {
  if (!id || !postElements(id).length || refetchTimers.has(id)) return;
  refetchTimers.set(id, setTimeout(async () => {
    refetchTimers.delete(id);
    try {
      refreshPostCounts((await api('GET', `/api/v1/posts/${id}`)).data);
    } catch (_) {
      // The counts stay as they were.
    }
  }, 200));
}

/** Inserts a post into the home timeline in id order (newest first), once. */
function insertIntoTimeline(post) {
  const list = $('timeline');
  if (list.querySelector(`:scope > .post[data-post-id="${Number(post.id)}"]`)) {
    refreshPostCounts(post);
    return;
  }
  const node = renderPost(post);
  const after = [...list.children].find((child) => Number(child.dataset.postId) < post.id);
  list.insertBefore(node, after || null);
  hide($('timeline-empty'));
  // An AI answer may have started streaming before the post itself arrived.
  for (const stream of state.ai.values()) if (stream.postId === post.id) renderAiAnswer(stream);
}

async function loadTimeline({ replace = false, more = false } = {}) {
  const error = $('timeline-error');
  hide(error);
  const params = new URLSearchParams({ limit: '20' });
  if (more && state.nextCursor) params.set('cursor', state.nextCursor);
  try {
    const { data } = await api('GET', '/api/v1/timeline?' + params);
    if (replace) {
      // Keep what is open (reply boxes, replies, AI answers) for posts still there.
      const keep = new Map();
      for (const node of $('timeline').children) keep.set(Number(node.dataset.postId), node);
      const fresh = data.items.map((post) => {
        const old = keep.get(post.id);
        if (old) {
          remember(post);
          return old;
        }
        return renderPost(post);
      });
      $('timeline').replaceChildren(...fresh);
      for (const post of data.items) refreshPostCounts(post);
    } else {
      for (const post of data.items) insertIntoTimeline(post);
    }
    if (!more || data.next_cursor !== undefined) state.nextCursor = data.next_cursor || null;
    $('more-button').hidden = !state.nextCursor;
    $('timeline-empty').hidden = $('timeline').children.length > 0;
  } catch (e) {
    showError(error, e);
  }
}

function removePost(id) {
  const post = state.posts.get(id);
  for (const node of postElements(id)) node.remove();
  state.posts.delete(id);
  if (post && post.reply_to) refetchSoon(post.reply_to);
  $('timeline-empty').hidden = $('timeline').children.length > 0;
}

async function toggleLike(node, id) {
  const button = node.querySelector(':scope > .post-actions .like-button');
  const error = node.querySelector(':scope > .post-error');
  hide(error);
  const liked = state.liked.has(id);
  button.disabled = true;
  try {
    await api(liked ? 'DELETE' : 'PUT', `/api/v1/posts/${id}/like`);
    if (liked) state.liked.delete(id);
    else state.liked.add(id);
    for (const other of postElements(id)) {
      const b = other.querySelector(':scope > .post-actions .like-button');
      b.classList.toggle('liked', !liked);
      b.setAttribute('aria-pressed', liked ? 'false' : 'true');
      b.title = liked ? 'Like' : 'Unlike';
      b.querySelector('.like-icon').textContent = liked ? '♡' : '♥';
    }
    try {
      refreshPostCounts((await api('GET', `/api/v1/posts/${id}`)).data);
    } catch (_) {
      const post = state.posts.get(id);
      if (post) refreshPostCounts({ ...post, like_count: Math.max(0, post.like_count + (liked ? -1 : 1)) });
    }
  } catch (e) {
    showError(error, e);
  } finally {
    button.disabled = false;
  }
}

/** Opens (or closes) the report form under a post: a reason, an optional comment, send. */
function openReportForm(node, id) {
  const open = node.querySelector(':scope > .report-form');
  if (open) {
    open.remove();
    return;
  }
  const reason = el('select', { class: 'report-reason', attrs: { 'aria-label': 'Why' } },
    ...['spam', 'abuse', 'illegal', 'other'].map((r) => el('option', { text: r, attrs: { value: r } })));
  const comment = el('input', {
    class: 'report-comment',
    attrs: { maxlength: 1000, placeholder: 'anything the moderators should know (optional)', 'aria-label': 'Comment' },
  });
  const send = el('button', { class: 'report-send', type: 'submit', text: 'Send report' });
  const form = el('form', { class: 'report-form' }, reason, comment, send);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const error = node.querySelector(':scope > .post-error');
    hide(error);
    send.disabled = true;
    try {
      await api('POST', '/api/v1/reports', {
        body: { post_id: id, reason: reason.value, comment: comment.value.trim() },
      });
      form.remove();
      show(node.querySelector(':scope > .post-note'), 'Reported. Thank you: a moderator will look at it.');
    } catch (e) {
      showError(error, e);
      send.disabled = false;
    }
  });
  node.querySelector(':scope > .post-actions').after(form);
}

/** Mutes or blocks the post's author: their posts leave the page. */
async function distance(node, how, button) {
  const handle = node.dataset.author;
  const error = node.querySelector(':scope > .post-error');
  hide(error);
  button.disabled = true;
  try {
    await api('PUT', `/api/v1/users/${encodeURIComponent(handle)}/${how}`);
    for (const other of document.querySelectorAll('.post')) {
      if (other.dataset.author === handle) other.remove();
    }
    showStatus(how === 'block' ? `You blocked @${handle}.` : `You muted @${handle}.`);
  } catch (e) {
    showError(error, e);
    button.disabled = false;
  }
}

async function deletePost(node, id, button) {
  const error = node.querySelector(':scope > .post-error');
  hide(error);
  if (button.dataset.confirm !== 'yes') {
    button.dataset.confirm = 'yes';
    button.textContent = 'Really delete?';
    setTimeout(() => {
      if (button.isConnected) {
        button.dataset.confirm = '';
        button.textContent = 'Delete';
      }
    }, 4000);
    return;
  }
  button.disabled = true;
  try {
    await api('DELETE', `/api/v1/posts/${id}`);
    removePost(id);
  } catch (e) {
    showError(error, e);
    button.disabled = false;
  }
}

/** Sends a post (or reply) with an Idempotency-Key that is kept until it succeeds. */
async function sendPost(body, replyTo, holder) {
  const text = body.trim();
  if (!holder.key || holder.key.text !== text || holder.key.replyTo !== replyTo) {
    holder.key = { text, replyTo, key: uuid() };
  }
  const payload = { body: text };
  if (replyTo) payload.reply_to = replyTo;
  const { data } = await api('POST', '/api/v1/posts', {
    body: payload,
    headers: { 'Idempotency-Key': holder.key.key },
  });
  holder.key = null;
  return data;
}

function openReplyBox(node, id) {
  let box = node.querySelector(':scope > .reply-form');
  if (box) {
    box.querySelector('textarea').focus();
    return;
  }
  const textarea = el('textarea', { class: 'reply-body', attrs: { rows: 2, placeholder: 'Write a reply…', 'aria-label': 'Reply' } });
  const send = el('button', { class: 'primary reply-send', type: 'submit', text: 'Send reply' });
  const cancel = el('button', { class: 'link-button', type: 'button', text: 'Cancel' });
  const error = el('p', { class: 'error', attrs: { role: 'alert' } });
  error.hidden = true;
  box = el('form', { class: 'reply-form' }, textarea, el('div', { class: 'row end' }, cancel, send), error);
  const holder = { key: null };
  cancel.addEventListener('click', () => box.remove());
  box.addEventListener('submit', async (event) => {
    event.preventDefault();
    hide(error);
    const n = chars(textarea.value.trim());
    if (n === 0 || n > MAX_POST_CHARS) {
      show(error, `A reply is 1 to ${MAX_POST_CHARS} characters.`);
      return;
    }
    send.disabled = true;
    try {
      const reply = await sendPost(textarea.value, id, holder);
      box.remove();
      addReply(reply);
      refetchSoon(id);
      insertIntoTimeline(reply);
      openReplies(node, id, { ensureOpen: true });
    } catch (e) {
      showError(error, e);
    } finally {
      send.disabled = false;
    }
  });
  node.querySelector(':scope > .post-actions').after(box);
  textarea.focus();
}

/** Appends a reply to every open replies list of its parent, once. */
function addReply(reply) {
  remember(reply);
  for (const list of document.querySelectorAll(`.replies[data-parent-id="${Number(reply.reply_to)}"]`)) {
    if (list.querySelector(`:scope > .post[data-post-id="${Number(reply.id)}"]`)) continue;
    list.append(renderPost(reply));
    list.closest('.replies-wrap').querySelector('.replies-empty').hidden = true;
  }
}

async function openReplies(node, id, { ensureOpen = false } = {}) {
  const button = node.querySelector(':scope > .post-actions .replies-button');
  let wrap = node.querySelector(':scope > .replies-wrap');
  if (wrap) {
    if (ensureOpen) return;
    wrap.remove();
    button.setAttribute('aria-expanded', 'false');
    live.unsubscribe(threadOf(id));
    return;
  }
  const list = el('ol', { class: 'replies posts', data: { parentId: id } });
  const empty = el('p', { class: 'muted small replies-empty', text: 'No replies yet.' });
  empty.hidden = true;
  const more = el('button', { class: 'more', type: 'button', text: 'More replies' });
  more.hidden = true;
  const error = el('p', { class: 'error', attrs: { role: 'alert' } });
  error.hidden = true;
  wrap = el('div', { class: 'replies-wrap', data: { parentId: id } }, list, empty, more, error);
  const answer = node.querySelector(':scope > .ai-answer');
  (answer || node.querySelector(':scope > .post-actions')).after(wrap);
  button.setAttribute('aria-expanded', 'true');
  live.subscribe(threadOf(id));
  let cursor = null;
  const load = async () => {
    hide(error);
    const params = new URLSearchParams({ limit: '50' });
    if (cursor) params.set('cursor', cursor);
    try {
      const { data } = await api('GET', `/api/v1/posts/${id}/replies?` + params);
      for (const reply of data.items) addReply(reply);
      cursor = data.next_cursor || null;
      more.hidden = !cursor;
      empty.hidden = list.children.length > 0;
      settleAiAnswer(id);
    } catch (e) {
      showError(error, e);
    }
  };
  more.addEventListener('click', load);
  await load();
}

/** The thread topic a post belongs to. */
function threadOf(id) {
  const post = state.posts.get(id);
  return (post && post.root_id) || id;
}

function onTimelineClick(event) {
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  const node = button.closest('.post');
  const id = node ? Number(node.dataset.postId) : 0;
  switch (button.dataset.action) {
    case 'profile':
      openProfile(button.dataset.handle);
      break;
    case 'like':
      toggleLike(node, id);
      break;
    case 'reply':
      openReplyBox(node, id);
      break;
    case 'replies':
      openReplies(node, id);
      break;
    case 'delete':
      deletePost(node, id, button);
      break;
    case 'report':
      openReportForm(node, id);
      break;
    case 'mute':
      distance(node, 'mute', button);
      break;
    case 'block':
      distance(node, 'block', button);
      break;
    default:
  }
}

// ---------------------------------------------------------------------------------------------
// Compose, AI draft and catch-up.

const composeHolder = { key: null };

function updateComposeCount() {
  const n = chars($('compose-body').value.trim());
  const count = $('compose-count');
  count.textContent = `${n} / ${MAX_POST_CHARS}`;
  count.classList.toggle('over', n > MAX_POST_CHARS);
  $('post-button').disabled = n === 0 || n > MAX_POST_CHARS || $('compose-body').readOnly;
}

async function submitPost(event) {
  event.preventDefault();
  const error = $('compose-error');
  hide(error);
  const textarea = $('compose-body');
  const n = chars(textarea.value.trim());
  if (n === 0 || n > MAX_POST_CHARS) {
    show(error, `A post is 1 to ${MAX_POST_CHARS} characters.`);
    return;
  }
  const button = $('post-button');
  if (button.dataset.busy === 'yes') return; // a double click sends once
  hide($('compose-status'));
  button.dataset.busy = 'yes';
  button.disabled = true;
  try {
    const post = await sendPost(textarea.value, null, composeHolder);
    textarea.value = '';
    insertIntoTimeline(post);
    if (/(^|[^a-z0-9_])@ai\b/i.test(post.body)) {
      show($('compose-status'), 'The AI is answering; its reply appears under your post.');
    }
  } catch (e) {
    showError(error, e);
  } finally {
    button.dataset.busy = '';
    updateComposeCount();
  }
}

async function aiDraft() {
  const error = $('compose-error');
  hide(error);
  const textarea = $('compose-body');
  const prompt = textarea.value.trim();
  if (!prompt) {
    show(error, 'Write what the draft should be about, then press AI draft.');
    textarea.focus();
    return;
  }
  if (!live.isOpen()) {
    show(error, 'The live connection is down; the draft could not reach you. Try again in a moment.');
    return;
  }
  const button = $('ai-draft-button');
  button.disabled = true;
  try {
    const { data } = await api('POST', '/api/v1/ai/compose', { body: { prompt } });
    textarea.readOnly = true;
    textarea.classList.add('streaming');
    show($('compose-status'), 'The AI is writing a draft…');
    bindAi(data.request_id, 'compose');
  } catch (e) {
    showError(error, e);
    button.disabled = false;
  }
  updateComposeCount();
}

async function catchUp() {
  const panel = $('ai-panel');
  const text = $('ai-panel-text');
  const error = $('ai-panel-error');
  hide(error);
  show(panel);
  text.textContent = '';
  text.dataset.state = 'waiting';
  if (!live.isOpen()) {
    show(error, 'The live connection is down; the summary could not reach you. Try again in a moment.');
    text.dataset.state = 'error';
    return;
  }
  const button = $('catch-up-button');
  button.disabled = true;
  text.textContent = 'Reading your timeline…';
  try {
    const { data } = await api('POST', '/api/v1/ai/summary');
    bindAi(data.request_id, 'summary');
  } catch (e) {
    text.textContent = '';
    text.dataset.state = 'error';
    showError(error, e);
    button.disabled = false;
  }
}

/** Ties a request id (from a 202) to where its text goes, and shows what already arrived. */
function bindAi(requestId, target) {
  const stream = aiStream(requestId);
  stream.target = target;
  renderAi(stream);
}

function aiStream(requestId) {
  let stream = state.ai.get(requestId);
  if (!stream) {
    stream = { id: requestId, text: '', done: false, error: null, target: null, postId: null, replyId: null };
    state.ai.set(requestId, stream);
    // Forget old streams; a page never needs more than a few.
    if (state.ai.size > 50) state.ai.delete(state.ai.keys().next().value);
  }
  return stream;
}

function renderAi(stream) {
  if (stream.postId) return renderAiAnswer(stream);
  if (stream.target === 'compose') {
    const textarea = $('compose-body');
    const status = $('compose-status');
    if (stream.text) textarea.value = stream.text;
    if (stream.done || stream.error) {
      textarea.readOnly = false;
      textarea.classList.remove('streaming');
      $('ai-draft-button').disabled = false;
      if (stream.error) {
        hide(status);
        show($('compose-error'), `The AI could not write a draft: ${stream.error}`);
      } else {
        show(status, 'Draft ready: edit it, then Post.');
        textarea.focus();
      }
    }
    updateComposeCount();
  } else if (stream.target === 'summary') {
    const text = $('ai-panel-text');
    if (stream.text) text.textContent = stream.text;
    text.dataset.state = stream.error ? 'error' : stream.done ? 'done' : 'streaming';
    if (stream.done || stream.error) $('catch-up-button').disabled = false;
    if (stream.error) show($('ai-panel-error'), `The AI could not write a summary: ${stream.error}`);
  }
}

/** The AI's answer to a post, growing under it delta by delta. */
function renderAiAnswer(stream) {
  for (const node of postElements(stream.postId)) {
    let answer = node.querySelector(':scope > .ai-answer');
    if (!answer) {
      answer = el('div', { class: 'ai-answer', data: { postId: stream.postId }, attrs: { 'aria-live': 'polite' } },
        el('span', { class: 'ai-label small', text: '@ai' }),
        el('span', { class: 'ai-text' }));
      node.querySelector(':scope > .post-actions').after(answer);
    }
    answer.dataset.requestId = stream.id;
    answer.dataset.state = stream.error ? 'error' : stream.done ? 'done' : 'streaming';
    const text = answer.querySelector('.ai-text');
    text.textContent = stream.error ? `The AI could not answer: ${stream.error}` : stream.text || '…';
    answer.classList.toggle('error', Boolean(stream.error));
    if (stream.replyId) answer.dataset.replyId = stream.replyId;
  }
}

/** Once the stored AI reply is on screen, the streamed copy above it goes. */
function settleAiAnswer(postId) {
  for (const node of postElements(postId)) {
    const answer = node.querySelector(':scope > .ai-answer[data-state="done"]');
    if (!answer || !answer.dataset.replyId) continue;
    const stored = node.querySelector(`:scope > .replies-wrap .post[data-post-id="${Number(answer.dataset.replyId)}"]`);
    if (stored) {
      answer.remove();
      stored.classList.add('fresh');
    }
  }
}

async function onAiDone(stream) {
  if (!stream.postId || !stream.replyId) return;
  // Show the stored reply under the post it answers.
  try {
    const { data: reply } = await api('GET', `/api/v1/posts/${stream.replyId}`);
    refetchSoon(stream.postId);
    for (const node of postElements(stream.postId)) {
      if (!node.querySelector(':scope > .replies-wrap')) await openReplies(node, stream.postId);
    }
    addReply(reply);
    settleAiAnswer(stream.postId);
  } catch (_) {
    // The streamed text stays on screen.
  }
}

// ---------------------------------------------------------------------------------------------
// Follows and profiles.

async function loadFollowing() {
  if (!state.me) return;
  try {
    const { data } = await api('GET', `/api/v1/users/${encodeURIComponent(state.me.handle)}/following?limit=100`);
    state.following = new Set(data.items.map((a) => a.handle));
  } catch (_) {
    // Only decides the Follow/Unfollow label.
  }
}

async function followFromForm(event) {
  event.preventDefault();
  const error = $('follow-error');
  const message = $('follow-message');
  hide(error);
  hide(message);
  const handle = normaliseHandle($('follow-handle').value);
  if (!/^[a-z0-9_]{3,30}$/.test(handle)) {
    show(error, 'A handle is 3 to 30 characters of a-z, 0-9 and _.');
    return;
  }
  if (state.me && handle === state.me.handle) {
    show(error, 'You cannot follow yourself.');
    return;
  }
  const button = $('follow-button');
  button.disabled = true;
  try {
    await setFollow(handle, true);
    $('follow-handle').value = '';
    show(message, `You follow @${handle}.`);
    message.dataset.handle = handle;
  } catch (e) {
    showError(error, e);
  } finally {
    button.disabled = false;
  }
}

async function setFollow(handle, follow) {
  await api(follow ? 'PUT' : 'DELETE', `/api/v1/users/${encodeURIComponent(handle)}/follow`);
  if (follow) state.following.add(handle);
  else state.following.delete(handle);
  if (state.profileHandle === handle) openProfile(handle);
  await loadTimeline({ replace: true });
}

async function openProfile(handle) {
  const card = $('profile');
  const error = $('profile-error');
  hide(error);
  state.profileHandle = handle;
  show(card);
  card.dataset.handle = handle;
  $('profile-name').textContent = '@' + handle;
  $('profile-handle').textContent = '';
  try {
    const { data: p } = await api('GET', `/api/v1/users/${encodeURIComponent(handle)}`);
    if (state.profileHandle !== handle) return;
    $('profile-name').textContent = p.display_name || '@' + p.handle;
    $('profile-handle').textContent = '@' + p.handle + (p.role === 'admin' ? ' · admin' : '') +
      ' · joined ' + new Date(p.created_at).toLocaleDateString();
    $('profile-bio').textContent = p.bio || '';
    $('profile-bio').hidden = !p.bio;
    $('profile-posts').textContent = p.posts_count;
    $('profile-followers').textContent = p.followers_count;
    $('profile-following').textContent = p.following_count;
    const button = $('profile-follow');
    const mine = state.me && p.handle === state.me.handle;
    button.hidden = mine;
    const following = state.following.has(p.handle);
    button.textContent = following ? 'Unfollow' : 'Follow';
    button.dataset.following = following ? 'yes' : 'no';
  } catch (e) {
    showError(error, e);
  }
  if (window.matchMedia('(max-width: 760px)').matches) card.scrollIntoView({ behavior: 'smooth' });
}

async function toggleProfileFollow() {
  const handle = state.profileHandle;
  if (!handle) return;
  const button = $('profile-follow');
  button.disabled = true;
  try {
    await setFollow(handle, button.dataset.following !== 'yes');
  } catch (e) {
    showError($('profile-error'), e);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Notifications.

const NOTIFICATION_TEXT = {
  like: 'liked your post',
  follow: 'followed you',
  reply: 'replied to you',
  mention: 'mentioned you',
};

let notificationTimer = null;

function scheduleNotifications() {
  clearTimeout(notificationTimer);
  notificationTimer = setTimeout(loadNotifications, 250);
}

async function loadNotifications() {
  const error = $('notifications-error');
  try {
    const { data } = await api('GET', '/api/v1/notifications?limit=30');
    hide(error);
    state.notifications = data.items;
    renderNotifications();
  } catch (e) {
    showError(error, e);
  }
}

function renderNotifications() {
  const list = $('notifications');
  list.replaceChildren(...state.notifications.map((n) => {
    const unread = n.id > state.lastSeenNotification;
    const who = el('button', {
      class: 'link-button',
      type: 'button',
      text: '@' + n.actor.handle,
      data: { action: 'profile', handle: n.actor.handle },
    });
    const item = el('li', { class: 'notification' + (unread ? ' unread' : ''), data: { kind: n.kind, id: n.id } },
      who, ' ', NOTIFICATION_TEXT[n.kind] || n.kind);
    if (n.post_id) item.append(el('span', { class: 'muted small', text: ` #${n.post_id}` }));
    item.append(' ', el('time', { class: 'muted small', text: ago(n.created_at), attrs: { datetime: n.created_at } }));
    return item;
  }));
  $('notifications-empty').hidden = state.notifications.length > 0;
  const unread = state.notifications.filter((n) => n.id > state.lastSeenNotification).length;
  const badge = $('notifications-badge');
  badge.textContent = unread >= 30 ? '30+' : String(unread);
  badge.dataset.count = String(unread);
  badge.hidden = unread === 0;
}

function markNotificationsRead() {
  const newest = state.notifications.reduce((m, n) => Math.max(m, n.id), state.lastSeenNotification);
  state.lastSeenNotification = newest;
  localStorage.setItem(userKey('seen'), String(newest));
  renderNotifications();
}

// ---------------------------------------------------------------------------------------------
// The websocket: ticket, resume with `since`, backoff, frames.

const live = {
  ws: null,
  lastId: null,
  attempt: 0,
  timer: null,
  running: false,
  suspended: false,
  threads: new Map(), // topic post id → how many open views want it
  hellos: 0,

  start() {
    if (this.running) return;
    this.running = true;
    this.suspended = false;
    this.attempt = 0;
    this.lastId = null;
    this.hellos = 0;
    this.connect();
  },

  stop() {
    this.running = false;
    this.suspended = false;
    clearTimeout(this.timer);
    this.timer = null;
    this.threads.clear();
    state.online.clear();
    renderOnline();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'signed out');
    }
    setStatus('offline', 'offline');
  },

  isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  },

  async connect() {
    this.timer = null;
    if (!this.running || this.ws) return;
    setStatus(this.attempt === 0 && this.hellos === 0 ? 'connecting' : 'reconnecting', 'connecting…');
    let ticket;
    try {
      ticket = (await api('POST', '/api/v1/ws/ticket')).data.ticket;
    } catch (e) {
      if (!this.running || e.status === 401) return;
      this.retry(e.retryAfter ? e.retryAfter * 1000 : null);
      return;
    }
    if (!this.running || this.ws) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let url = `${scheme}//${location.host}/api/v1/ws?ticket=${encodeURIComponent(ticket)}`;
    if (this.lastId !== null) url += '&since=' + this.lastId;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (_) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.addEventListener('message', (event) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      this.onFrame(frame);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      state.online.clear();
      renderOnline();
      if (!this.running) return;
      // A node shutting down (1001) or shedding a slow client (1013) expects a prompt return.
      const prompt = (event.code === 1001 || event.code === 1013) && this.attempt === 0;
      this.retry(prompt ? 100 + Math.random() * 400 : null);
    });
  },

  retry(delayMs) {
    if (!this.running) return;
    clearTimeout(this.timer);
    let delay = delayMs;
    if (delay == null) {
      const base = Math.min(30000, 1000 * 2 ** this.attempt);
      delay = base / 2 + Math.random() * (base / 2);
    }
    this.attempt += 1;
    setStatus('reconnecting', `reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`);
    this.timer = setTimeout(() => this.connect(), delay);
  },

  /**
   * The page is going away (or into the back/forward cache): close the socket now rather than
   * leave a session open on the server for a page nobody sees.
   */
  suspend() {
    if (!this.running) return;
    this.running = false;
    this.suspended = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'page hidden');
    }
    setStatus('offline', 'paused');
  },

  /** The page is shown again from the back/forward cache: resume after the last event seen. */
  resume() {
    if (!this.suspended || !state.me) return;
    this.suspended = false;
    this.running = true;
    this.attempt = 0;
    this.connect();
  },

  /** Reconnect now (the browser came back online, or the tab came back). */
  nudge() {
    if (this.running && !this.ws && this.timer) {
      clearTimeout(this.timer);
      this.connect();
    }
  },

  send(op) {
    if (this.isOpen()) this.ws.send(JSON.stringify(op));
  },

  subscribe(topicId) {
    const n = this.threads.get(topicId) || 0;
    this.threads.set(topicId, n + 1);
    if (n === 0) this.send({ op: 'subscribe', topic: `thread:${topicId}` });
  },

  unsubscribe(topicId) {
    const n = this.threads.get(topicId) || 0;
    if (n <= 1) {
      this.threads.delete(topicId);
      if (n === 1) this.send({ op: 'unsubscribe', topic: `thread:${topicId}` });
    } else {
      this.threads.set(topicId, n - 1);
    }
  },

  onFrame(frame) {
    if (typeof frame.id === 'number' && (this.lastId === null || frame.id > this.lastId)) {
      this.lastId = frame.id;
    }
    const data = frame.data || {};
    switch (frame.type) {
      case 'hello': {
        this.attempt = 0;
        this.hellos += 1;
        setStatus('connected', 'live');
        for (const topic of this.threads.keys()) this.send({ op: 'subscribe', topic: `thread:${topic}` });
        const status = data.resume && data.resume.status;
        if (status === 'resync_required') {
          loadTimeline({ replace: true });
          loadNotifications();
        } else if (status !== 'resumed' && this.hellos > 1) {
          // A fresh start after the first: pick up what happened while away.
          loadTimeline();
          loadNotifications();
        }
        break;
      }
      case 'post.created':
        if (data.id) {
          insertIntoTimeline(data);
          if (data.reply_to) {
            addReply(data);
            refetchSoon(data.reply_to);
          }
        }
        break;
      case 'post.deleted':
        if (data.id) removePost(data.id);
        break;
      case 'notification':
        if (data.id && !state.notifications.some((n) => n.id === data.id)) {
          state.notifications.unshift(data);
          renderNotifications();
        }
        scheduleNotifications();
        break;
      case 'thread.reply':
        if (data.id) {
          addReply(data);
          refetchSoon(data.reply_to);
          settleAiAnswer(data.reply_to);
        }
        break;
      case 'ai.delta': {
        const stream = aiStream(data.request_id);
        if (data.post_id) stream.postId = data.post_id;
        stream.text = data.reset ? data.text : stream.text + data.text;
        renderAi(stream);
        break;
      }
      case 'ai.done': {
        const stream = aiStream(data.request_id);
        if (data.post_id) stream.postId = data.post_id;
        if (data.reply_id) stream.replyId = data.reply_id;
        if (typeof data.text === 'string' && data.text) stream.text = data.text;
        stream.done = true;
        renderAi(stream);
        onAiDone(stream);
        break;
      }
      case 'ai.error': {
        const stream = aiStream(data.request_id);
        if (data.post_id) stream.postId = data.post_id;
        stream.error = data.detail || data.code || 'unknown error';
        renderAi(stream);
        break;
      }
      case 'presence':
        if (data.user && data.user.handle) {
          if (data.status === 'online') state.online.add(data.user.handle);
          else state.online.delete(data.user.handle);
          renderOnline();
        }
        break;
      case 'error':
        console.warn('aisocial websocket error frame', data.code, data.detail);
        break;
      default:
        // pong, subscribed, unsubscribed, and anything newer than this page.
    }
  },
};

function setStatus(stateName, text) {
  const node = $('ws-status');
  node.dataset.state = stateName;
  node.textContent = text;
  node.title = stateName === 'connected' ? 'Live updates are on' : 'Live updates are off: ' + text;
}

function renderOnline() {
  const node = $('online-now');
  const handles = [...state.online].sort();
  node.textContent = handles.length ? 'Online now: ' + handles.map((h) => '@' + h).join(', ') : '';
  node.hidden = handles.length === 0;
}

// ---------------------------------------------------------------------------------------------
// Wiring.

function refreshTimes() {
  for (const time of document.querySelectorAll('time[datetime]')) {
    time.textContent = ago(time.getAttribute('datetime'));
  }
}

function main() {
  $('dev-form').addEventListener('submit', devSignIn);
  $('google-sign-in').addEventListener('click', googleSignIn);
  $('sign-out').addEventListener('click', signOut);
  $('compose-form').addEventListener('submit', submitPost);
  $('compose-body').addEventListener('input', () => {
    updateComposeCount();
    hide($('compose-error'));
  });
  $('compose-body').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) $('compose-form').requestSubmit();
  });
  $('ai-draft-button').addEventListener('click', aiDraft);
  $('catch-up-button').addEventListener('click', catchUp);
  $('ai-panel-close').addEventListener('click', () => hide($('ai-panel')));
  $('refresh-button').addEventListener('click', () => loadTimeline({ replace: true }));
  $('more-button').addEventListener('click', () => loadTimeline({ more: true }));
  $('timeline').addEventListener('click', onTimelineClick);
  $('follow-form').addEventListener('submit', followFromForm);
  $('profile-close').addEventListener('click', () => {
    hide($('profile'));
    state.profileHandle = null;
  });
  $('profile-follow').addEventListener('click', toggleProfileFollow);
  $('notifications-read').addEventListener('click', markNotificationsRead);
  $('notifications').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action="profile"]');
    if (button) openProfile(button.dataset.handle);
  });
  window.addEventListener('online', () => live.nudge());
  window.addEventListener('pagehide', () => live.suspend());
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) live.resume();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') live.nudge();
  });
  // Signed in or out in another tab.
  window.addEventListener('storage', (event) => {
    if (event.key !== SESSION_KEY) return;
    const session = loadSession();
    if (!session && state.me) signedOutElsewhere('You signed out in another tab.');
    else if (session && (!state.me || session.user.id !== state.me.id)) {
      live.stop();
      enterApp();
    }
  });
  setInterval(refreshTimes, 30000);
  if (loadSession()) enterApp();
  else leaveApp();
}

main();
