// The mailbus webmail: one page that speaks JMAP (RFC 8620, RFC 8621) to the same origin.
//
// It authenticates with the session cookie the login form set, and sends the CSRF token from
// /webmail/session with every POST. Everything the mail says is put into the page as text nodes (never as
// markup); an HTML body is shown only through /webmail/html/{id}, which the server sanitises, inside a
// sandboxed iframe with no scripts and no same origin. The page has no inline script or style, so the
// page's Content-Security-Policy can forbid both.
'use strict';

/* ------------------------------------------------------------------ constants */

const USING = ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail', 'urn:ietf:params:jmap:submission',
  'urn:ietf:params:jmap:vacationresponse'];
const PAGE_SIZE = 50;
const LIST_PROPERTIES = ['threadId', 'mailboxIds', 'keywords', 'from', 'to', 'subject', 'receivedAt', 'preview',
  'hasAttachment'];
const READ_PROPERTIES = ['threadId', 'mailboxIds', 'keywords', 'from', 'to', 'cc', 'bcc', 'replyTo', 'subject',
  'sentAt', 'receivedAt', 'messageId', 'inReplyTo', 'references', 'textBody', 'htmlBody', 'attachments', 'bodyValues',
  'hasAttachment', 'preview'];
// The order folders with a role are listed in (RFC 8621 §2: role values from the IANA registry).
const ROLE_ORDER = ['inbox', 'drafts', 'sent', 'archive', 'junk', 'trash'];
const ROLE_ICON = { inbox: 'inbox', drafts: 'file', sent: 'send', archive: 'archive', junk: 'alert', trash: 'trash' };
const NARROW = window.matchMedia('(max-width: 760px)');

/* ------------------------------------------------------------------ icons (inline SVG, no fetch) */

const ICONS = {
  menu: 'M4 6h16M4 12h16M4 18h16',
  search: 'M11 18a7 7 0 1 1 0-14 7 7 0 0 1 0 14zM20 20l-4-4',
  close: 'M6 6l12 12M18 6L6 18',
  help: 'M12 21a9 9 0 1 1 0-18 9 9 0 0 1 0 18zM9.5 9.5a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .9-1 1.6v.6M12 17h.01',
  pencil: 'M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4',
  plus: 'M12 5v14M5 12h14',
  'chevron-left': 'M15 6l-6 6 6 6',
  'chevron-right': 'M9 6l6 6-6 6',
  'arrow-left': 'M19 12H5M11 6l-6 6 6 6',
  reply: 'M10 8L4 13l6 5M4 13h10a6 6 0 0 1 6 6',
  'reply-all': 'M12 8l-5 5 5 5M7 8l-5 5 5 5M7 13h8a6 6 0 0 1 6 6',
  forward: 'M14 8l6 5-6 5M20 13H10a6 6 0 0 0-6 6',
  archive: 'M3 5h18v4H3zM5 9v10h14V9M10 13h4',
  trash: 'M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v6M14 11v6',
  'mail-dot': 'M3 7l9 6 9-6M3 6h18v12H3zM19 4a2 2 0 1 0 .01 0',
  star: 'M12 3l2.8 5.8 6.2.9-4.5 4.4 1 6.2L12 17.4 6.5 20.3l1-6.2L3 9.7l6.2-.9z',
  'mail-open': 'M3 10l9-6 9 6v10H3zM3 10l9 6 9-6',
  paperclip: 'M20 11l-8.5 8.5a5 5 0 0 1-7-7L13 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L14 7',
  inbox: 'M3 13l3-8h12l3 8v6H3zM3 13h5l1 3h6l1-3h5',
  file: 'M6 3h9l4 4v14H6zM14 3v5h5',
  send: 'M4 12l16-8-6 17-3-7zM11 14l9-10',
  alert: 'M12 3l10 18H2zM12 10v5M12 18h.01',
  folder: 'M3 6h6l2 2h10v11H3z',
  download: 'M12 4v11M7 10l5 5 5-5M5 20h14',
  image: 'M4 5h16v14H4zM4 16l5-5 4 4 3-3 4 4M15 9h.01',
  edit: 'M4 20h4L19 9l-4-4L4 16v4z',
};

function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] || ICONS.folder);
  svg.appendChild(path);
  return svg;
}

/* ------------------------------------------------------------------ DOM helpers */

const $ = (id) => document.getElementById(id);

// Builds an element; strings become text nodes, so nothing from a message is ever parsed as markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

// Re-renders a list without replacing the nodes that did not change. A push can re-render the folders
// or the messages at any moment; a node replaced between a mouse press and its release would swallow
// the click, so unchanged rows stay the very same nodes and only the changed ones are rebuilt.
function reconcile(list, items, key, signature, build) {
  const old = new Map();
  for (const node of list.children) old.set(node.dataset.key, node);
  const nodes = items.map((item) => {
    const k = key(item);
    const sig = signature(item);
    const kept = old.get(k);
    if (kept && kept.dataset.sig === sig) return kept;
    const node = build(item);
    node.dataset.key = k;
    node.dataset.sig = sig;
    return node;
  });
  const wanted = new Set(nodes);
  for (const node of [...list.children]) if (!wanted.has(node)) node.remove();
  nodes.forEach((node, i) => {
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
  });
  return nodes;
}

function fillIcons(root) {
  for (const node of root.querySelectorAll('[data-icon]')) {
    if (!node.querySelector('svg')) node.prepend(icon(node.dataset.icon));
  }
}

/* ------------------------------------------------------------------ formatting */

function addressText(addr) {
  if (!addr) return '';
  return addr.name ? `${addr.name} <${addr.email}>` : addr.email || '';
}

function addressShort(addr) {
  if (!addr) return '';
  return addr.name || addr.email || '';
}

function addressList(list) {
  return (list || []).map(addressText).join(', ');
}

const sameDay = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

function shortDate(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  const now = new Date();
  if (sameDay(date, now)) return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (date.getFullYear() === now.getFullYear()) return date.toLocaleDateString([], { month: 'short', day: 'numeric' });
  return date.toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' });
}

function longDate(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function plural(n, word) {
  return `${n.toLocaleString()} ${word}${n === 1 ? '' : 's'}`;
}

// Splits "Ann <ann@x.org>, bob@y.org; Carl Z <c@z>" into JMAP EmailAddress objects.
function parseAddresses(text) {
  const out = [];
  const bad = [];
  for (const raw of text.split(/[,;\n]/)) {
    const part = raw.trim();
    if (!part) continue;
    const angle = part.match(/^(.*)<([^<>\s]+)>$/);
    const email = angle ? angle[2].trim() : part;
    const name = angle ? angle[1].trim().replace(/^"(.*)"$/, '$1') : null;
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) bad.push(part);
    else out.push(name ? { name, email } : { email });
  }
  return { addresses: out, bad };
}

// The text of an HTML fragment, parsed inertly (a DOMParser document runs no script and loads nothing).
function htmlToText(html) {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  for (const br of doc.querySelectorAll('br')) br.replaceWith('\n');
  for (const block of doc.querySelectorAll('p, div, li, tr, h1, h2, h3, h4, blockquote')) block.append('\n');
  return (doc.body ? doc.body.textContent : '').replace(/\n{3,}/g, '\n\n').trim();
}

/* ------------------------------------------------------------------ JMAP over fetch */

class JmapError extends Error {
  constructor(type, description) {
    super(description || type);
    this.type = type;
  }
}

const app = {
  username: '',
  accountId: '',
  csrf: '',
  session: null,
  mailboxes: new Map(), // id -> Mailbox
  roles: {}, // role -> mailbox id
  identities: [],
  view: { mailboxId: null, search: '' },
  position: 0,
  total: 0,
  items: [], // one email per thread, as listed
  threads: new Map(), // threadId -> emailIds
  cursor: -1, // index into items of the highlighted row
  openId: null, // id of the listed email whose thread is open
  open: null, // { threadId, emails: [Email], focus: id }
  compose: null, // { mode, attachments: [...], inReplyTo, ... }
  events: null,
  refreshTimer: 0,
  loading: 0,
  seq: 0,
};

function endSession() {
  location.replace('/?error=expired');
  return new JmapError('unauthorized', 'session ended');
}

async function post(url, body, headers) {
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'X-CSRF-Token': app.csrf, ...headers },
      body,
    });
  } catch (error) {
    throw new JmapError('network', 'The server cannot be reached. Check your connection.');
  }
  if (response.status === 401) throw endSession();
  if (!response.ok) {
    let detail = '';
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || problem.type || '';
    } catch (_) {
      detail = response.statusText;
    }
    throw new JmapError(`http${response.status}`, detail || `The server answered ${response.status}.`);
  }
  return response.json();
}

// Sends method calls (accountId filled in) and returns { callId: arguments }; a method error throws.
async function jmap(calls) {
  const methodCalls = calls.map(([name, args, id]) => [name, { accountId: app.accountId, ...args }, id]);
  const url = (app.session && app.session.apiUrl) || '/jmap/api';
  const body = await post(url, JSON.stringify({ using: USING, methodCalls }), { 'Content-Type': 'application/json' });
  const out = {};
  for (const [name, args, id] of body.methodResponses || []) {
    if (name === 'error') throw new JmapError(args.type, args.description || args.type);
    // An implicit call (onSuccessUpdateEmail) answers under the same id: keep the first, add the rest.
    if (out[id]) out[`${id}+${name}`] = args;
    else out[id] = args;
  }
  return out;
}

// A /set response's first per-object failure, thrown as an error the UI can show.
function checkSet(result, what) {
  for (const key of ['notCreated', 'notUpdated', 'notDestroyed']) {
    const failed = result && result[key];
    if (failed && Object.keys(failed).length) {
      const error = Object.values(failed)[0];
      throw new JmapError(error.type, `${what}: ${error.description || error.type}`);
    }
  }
  return result;
}

function downloadUrl(blobId, name, type) {
  const template = (app.session && app.session.downloadUrl) || '/jmap/download/{accountId}/{blobId}/{name}?type={type}';
  return template
    .replace('{accountId}', encodeURIComponent(app.accountId))
    .replace('{blobId}', encodeURIComponent(blobId))
    .replace('{name}', encodeURIComponent(name || 'attachment'))
    .replace('{type}', encodeURIComponent(type || 'application/octet-stream'));
}

async function upload(file) {
  const template = (app.session && app.session.uploadUrl) || '/jmap/upload/{accountId}/';
  const url = template.replace('{accountId}', encodeURIComponent(app.accountId));
  return post(url, file, { 'Content-Type': file.type || 'application/octet-stream' });
}

/* ------------------------------------------------------------------ folders */

const MAILBOX_PROPERTIES = ['name', 'parentId', 'role', 'sortOrder', 'totalEmails', 'unreadEmails', 'myRights'];

function setMailboxes(list) {
  app.mailboxes = new Map(list.map((m) => [m.id, m]));
  app.roles = {};
  for (const m of list) if (m.role) app.roles[m.role] = m.id;
  // The stored inbox id lets the next visit ask for the list in the same request as the folders.
  if (app.roles.inbox) {
    try {
      localStorage.setItem(`mailbus.inbox.${app.accountId}`, app.roles.inbox);
    } catch (_) { /* storage may be off; it is only a shortcut */ }
  }
}

// Folders in display order: roles first (in ROLE_ORDER), then the rest by sortOrder and name, children
// after their parent; each with its depth.
function orderedMailboxes() {
  const children = new Map();
  for (const m of app.mailboxes.values()) {
    const parent = m.parentId && app.mailboxes.has(m.parentId) ? m.parentId : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(m);
  }
  const rank = (m) => (m.role && ROLE_ORDER.includes(m.role) ? ROLE_ORDER.indexOf(m.role) : ROLE_ORDER.length);
  const compare = (a, b) => rank(a) - rank(b) || (a.sortOrder || 0) - (b.sortOrder || 0) || a.name.localeCompare(b.name);
  const out = [];
  const walk = (parent, depth) => {
    for (const m of (children.get(parent) || []).sort(compare)) {
      out.push({ mailbox: m, depth });
      walk(m.id, depth + 1);
    }
  };
  walk(null, 0);
  return out;
}

function displayName(m) {
  if (!m) return '';
  if (m.role === 'inbox') return 'Inbox';
  return m.name;
}

function renderFolders() {
  const list = $('folders');
  const folderCount = (m) => (m.role === 'drafts' ? m.totalEmails : m.unreadEmails);
  const rows = reconcile(list, orderedMailboxes(), ({ mailbox: m }) => m.id,
    ({ mailbox: m, depth }) => JSON.stringify([displayName(m), m.role || '', Math.min(depth, 4), folderCount(m), !!m.unreadEmails]),
    ({ mailbox: m, depth }) => folderRow(m, depth, folderCount(m)));
  for (const row of rows) {
    const active = !app.view.search && row.dataset.id === app.view.mailboxId;
    row.classList.toggle('active', active);
    const link = row.querySelector('.folder-link');
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  renderMoveSelect();
  updateTitle();
}

function folderRow(m, depth, count) {
  const actions = m.role
    ? null
    : el('span', { class: 'folder-actions' },
      el('button', {
        type: 'button', class: 'icon-button small', title: `Rename ${m.name}`, 'aria-label': `Rename ${m.name}`,
        'data-test': 'folder-rename', onclick: (e) => { e.stopPropagation(); renameFolder(m.id); },
      }, icon('edit')),
      el('button', {
        type: 'button', class: 'icon-button small', title: `Delete ${m.name}`, 'aria-label': `Delete ${m.name}`,
        'data-test': 'folder-delete', onclick: (e) => { e.stopPropagation(); deleteFolder(m.id); },
      }, icon('trash')));
  const row = el('li', {
    class: `folder depth-${Math.min(depth, 4)}${m.unreadEmails ? ' has-unread' : ''}`,
    'data-test': 'folder', 'data-name': displayName(m), 'data-role': m.role || '', 'data-id': m.id,
  },
  el('a', {
    href: `#${encodeURIComponent(m.id)}`, class: 'folder-link',
    onclick: (e) => { e.preventDefault(); openFolder(m.id); },
  },
  icon(ROLE_ICON[m.role] || 'folder'),
  el('span', { class: 'folder-name', text: displayName(m) }),
  count ? el('span', { class: 'count', text: count.toLocaleString(), 'data-test': 'folder-count' }) : null),
  actions);
  // Messages can be dragged from the list onto a folder.
  row.addEventListener('dragover', (e) => { e.preventDefault(); row.classList.add('drop'); });
  row.addEventListener('dragleave', () => row.classList.remove('drop'));
  row.addEventListener('drop', (e) => {
    e.preventDefault();
    row.classList.remove('drop');
    const id = e.dataTransfer.getData('application/x-mailbus-email');
    if (id) moveThread(id, m.id);
  });
  return row;
}

function renderMoveSelect() {
  const select = $('move-select');
  const options = [el('option', { value: '', text: 'Move to…' })];
  for (const { mailbox: m, depth } of orderedMailboxes()) {
    options.push(el('option', { value: m.id, text: `${'\u2003'.repeat(depth)}${displayName(m)}` }));
  }
  select.replaceChildren(...options);
  select.value = '';
}

function updateTitle() {
  const inbox = app.mailboxes.get(app.roles.inbox);
  const unread = inbox ? inbox.unreadEmails : 0;
  const here = app.view.search ? `Search: ${app.view.search}` : displayName(app.mailboxes.get(app.view.mailboxId));
  const inboxPart = unread ? `Inbox (${unread.toLocaleString()})` : 'Inbox';
  const title = !here || here === 'Inbox' ? inboxPart : `${here} · ${inboxPart}`;
  document.title = `${title} — mailbus`;
}

async function refreshMailboxes() {
  const r = await jmap([['Mailbox/get', { ids: null, properties: MAILBOX_PROPERTIES }, 'm']]);
  setMailboxes(r.m.list);
  renderFolders();
}

function openFolder(id) {
  app.view = { mailboxId: id, search: '' };
  $('search-input').value = '';
  $('search-clear').hidden = true;
  app.position = 0;
  closeDrawer();
  closeReader();
  renderFolders();
  loadList({ resetCursor: true });
}

async function askText(title, text, value, okLabel) {
  const dialog = $('prompt');
  $('prompt-title').textContent = title;
  $('prompt-text').textContent = text || '';
  const input = $('prompt-input');
  input.hidden = value === null;
  input.value = value || '';
  $('prompt-ok').textContent = okLabel || 'OK';
  dialog.returnValue = '';
  dialog.showModal();
  if (!input.hidden) input.select();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok' ? input.value.trim() : null);
    }, { once: true });
  });
}

async function createFolder() {
  const name = await askText('New folder', 'Name of the new folder:', '', 'Create');
  if (!name) return;
  await guard(async () => {
    const r = await jmap([['Mailbox/set', { create: { f: { name, parentId: null } } }, 's']]);
    checkSet(r.s, 'The folder was not created');
    await refreshMailboxes();
    toast(`Folder “${name}” created.`);
  });
}

async function renameFolder(id) {
  const m = app.mailboxes.get(id);
  if (!m) return;
  const name = await askText('Rename folder', `New name for “${m.name}”:`, m.name, 'Rename');
  if (!name || name === m.name) return;
  await guard(async () => {
    const r = await jmap([['Mailbox/set', { update: { [id]: { name } } }, 's']]);
    checkSet(r.s, 'The folder was not renamed');
    await refreshMailboxes();
    toast(`Folder renamed to “${name}”.`);
  });
}

async function deleteFolder(id) {
  const m = app.mailboxes.get(id);
  if (!m) return;
  const what = m.totalEmails ? ` and the ${plural(m.totalEmails, 'message')} in it` : '';
  const ok = await askText('Delete folder', `Delete “${m.name}”${what}? This cannot be undone.`, null, 'Delete');
  if (ok === null) return;
  await guard(async () => {
    const r = await jmap([['Mailbox/set', { destroy: [id], onDestroyRemoveEmails: true }, 's']]);
    checkSet(r.s, 'The folder was not deleted');
    if (app.view.mailboxId === id) openFolder(app.roles.inbox);
    await refreshMailboxes();
    toast(`Folder “${m.name}” deleted.`);
  });
}

/* ------------------------------------------------------------------ message list */

function currentFilter() {
  if (app.view.search) {
    const excluded = ['trash', 'junk'].map((r) => app.roles[r]).filter(Boolean);
    const text = { text: app.view.search };
    return excluded.length ? { operator: 'AND', conditions: [text, { inMailboxOtherThan: excluded }] } : text;
  }
  return { inMailbox: app.view.mailboxId };
}

// The calls that fetch one page of the list: the query, the emails, and their threads, chained with result
// references so that it is one round trip (RFC 8620 §3.7).
function listCalls(filter, position) {
  return [
    ['Email/query', {
      filter, sort: [{ property: 'receivedAt', isAscending: false }], collapseThreads: true,
      position, limit: PAGE_SIZE, calculateTotal: true,
    }, 'q'],
    ['Email/get', {
      '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: LIST_PROPERTIES,
    }, 'g'],
    ['Thread/get', { '#ids': { resultOf: 'g', name: 'Email/get', path: '/list/*/threadId' } }, 't'],
  ];
}

function takeList(r) {
  const byId = new Map(r.g.list.map((e) => [e.id, e]));
  app.items = r.q.ids.map((id) => byId.get(id)).filter(Boolean);
  app.total = typeof r.q.total === 'number' ? r.q.total : app.position + app.items.length;
  app.threads = new Map(r.t.list.map((t) => [t.id, t.emailIds]));
}

async function loadList(options = {}) {
  const seq = ++app.seq;
  const keepId = app.items[app.cursor] ? app.items[app.cursor].id : null;
  setBusy(true);
  try {
    const r = await jmap(listCalls(currentFilter(), app.position));
    if (seq !== app.seq) return; // a newer load has started meanwhile
    const before = new Set(app.items.map((e) => e.id));
    takeList(r);
    if (options.resetCursor || !keepId) app.cursor = app.items.length ? 0 : -1;
    else {
      const at = app.items.findIndex((e) => e.id === keepId);
      app.cursor = at >= 0 ? at : Math.min(app.cursor, app.items.length - 1);
    }
    renderList(options.live ? before : null);
  } catch (error) {
    showError(error);
  } finally {
    setBusy(false);
  }
}

function threadSize(email) {
  const ids = app.threads.get(email.threadId);
  return ids ? ids.length : 1;
}

function messageRow(e, inSent, people, chips) {
  const unread = !(e.keywords && e.keywords.$seen);
  const flagged = !!(e.keywords && e.keywords.$flagged);
  const count = threadSize(e);
  const row = el('li', {
    class: ['message-row', unread && 'unread', flagged && 'flagged'].filter(Boolean).join(' '),
    role: 'option', draggable: 'true',
    'data-test': 'message-row', 'data-id': e.id, 'data-subject': e.subject || '',
    'data-unread': unread ? 'true' : 'false', 'data-flagged': flagged ? 'true' : 'false',
  },
  el('button', {
    type: 'button', class: `star${flagged ? ' on' : ''}`, title: flagged ? 'Unstar' : 'Star',
    'aria-label': flagged ? 'Unstar' : 'Star', 'aria-pressed': flagged ? 'true' : 'false', 'data-test': 'row-star',
    onclick: (ev) => { ev.stopPropagation(); setKeyword([e.id], '$flagged', !flagged); },
  }, icon('star')),
  el('span', { class: 'row-from', text: inSent ? `To: ${people || '(no recipient)'}` : people || '(unknown sender)' },
    count > 1 ? el('span', { class: 'thread-count', text: String(count), title: `${count} messages in this conversation` }) : null),
  el('span', { class: 'row-date', text: shortDate(e.receivedAt), title: longDate(e.receivedAt) }),
  el('span', { class: 'row-subject' },
    e.hasAttachment ? el('span', { class: 'row-clip', title: 'Has attachments' }, icon('paperclip')) : null,
    el('span', { class: 'subject', text: e.subject || '(no subject)' }),
    el('span', { class: 'preview', text: e.preview ? ` — ${e.preview}` : '' })),
  chips.length ? el('span', { class: 'row-chips' }, chips.map((name) => el('span', { class: 'chip', text: name }))) : null);
  // The row may outlive a re-render that moved it, so its place is looked up when it is clicked.
  row.addEventListener('click', () => {
    app.cursor = app.items.findIndex((x) => x.id === e.id);
    openMessage(e.id);
  });
  row.addEventListener('dragstart', (ev) => {
    ev.dataTransfer.setData('application/x-mailbus-email', e.id);
    ev.dataTransfer.effectAllowed = 'move';
  });
  return row;
}

function renderList(before) {
  const list = $('messages');
  const inSent = !app.view.search && ['sent', 'drafts'].includes((app.mailboxes.get(app.view.mailboxId) || {}).role);
  const people = (e) => (inSent ? (e.to || []) : (e.from || [])).map(addressShort).join(', ');
  const chips = (e) => (app.view.search
    ? Object.keys(e.mailboxIds || {}).map((id) => app.mailboxes.get(id)).filter(Boolean).map(displayName)
    : []);
  const rows = reconcile(list, app.items, (e) => e.id,
    (e) => JSON.stringify([inSent, e.keywords || {}, people(e), threadSize(e), shortDate(e.receivedAt),
      e.subject || '', e.preview || '', !!e.hasAttachment, chips(e)]),
    (e) => messageRow(e, inSent, people(e), chips(e)));
  rows.forEach((row, index) => {
    const id = row.dataset.id;
    row.classList.toggle('cursor', index === app.cursor);
    row.classList.toggle('open', id === app.openId);
    row.classList.toggle('fresh', !!before && !before.has(id));
    row.setAttribute('aria-selected', id === app.openId ? 'true' : 'false');
  });
  const empty = $('list-empty');
  empty.hidden = rows.length > 0;
  empty.textContent = app.view.search ? `No messages match “${app.view.search}”.` : 'No messages in this folder.';
  const title = app.view.search ? `Search: ${app.view.search}` : displayName(app.mailboxes.get(app.view.mailboxId));
  $('list-title').textContent = title;
  const first = app.items.length ? app.position + 1 : 0;
  const last = app.position + app.items.length;
  $('paging').textContent = app.items.length ? `${first.toLocaleString()}–${last.toLocaleString()} of ${app.total.toLocaleString()}` : '';
  $('page-prev').disabled = app.position === 0;
  $('page-next').disabled = last >= app.total;
  updateTitle();
}

function moveCursor(delta) {
  if (!app.items.length) return;
  const next = Math.max(0, Math.min(app.items.length - 1, app.cursor + delta));
  if (next === app.cursor && app.cursor >= 0) {
    if (delta > 0 && app.position + app.items.length < app.total) return page(1, 'first');
    if (delta < 0 && app.position > 0) return page(-1, 'last');
    return;
  }
  app.cursor = next;
  highlightCursor();
  // With the reader beside the list, j/k read the next message at once, as mail programs do.
  if (app.open && !NARROW.matches) openMessage(app.items[next].id);
}

function highlightCursor() {
  const rows = $('messages').children;
  for (let i = 0; i < rows.length; i++) rows[i].classList.toggle('cursor', i === app.cursor);
  const row = rows[app.cursor];
  if (row) row.scrollIntoView({ block: 'nearest' });
}

async function page(direction, where) {
  const next = app.position + direction * PAGE_SIZE;
  if (next < 0 || (direction > 0 && next >= app.total)) return;
  app.position = next;
  app.cursor = -1;
  await loadList({ resetCursor: true });
  if (where === 'last') { app.cursor = app.items.length - 1; highlightCursor(); }
  $('messages').scrollTop = 0;
}

/* ------------------------------------------------------------------ reading */

function listed(id) {
  return app.items.find((e) => e.id === id) || null;
}

function hasHtml(email) {
  return (email.htmlBody || []).some((p) => p.type === 'text/html');
}

async function openMessage(id) {
  const email = listed(id);
  if (!email) return;
  const started = performance.now();
  app.openId = id;
  const threadIds = app.threads.get(email.threadId) || [id];
  markOpenRow();
  showReader();
  const unread = !(email.keywords && email.keywords.$seen);
  const calls = [];
  if (unread) calls.push(['Email/set', { update: { [id]: { 'keywords/$seen': true } } }, 'seen']);
  calls.push(['Email/get', {
    ids: threadIds, properties: READ_PROPERTIES, fetchTextBodyValues: true, maxBodyValueBytes: 262144,
  }, 'e']);
  if (unread) {
    calls.push(['Mailbox/get', { ids: Object.keys(email.mailboxIds || {}).concat(app.roles.inbox || []), properties: MAILBOX_PROPERTIES }, 'm']);
  }
  try {
    const r = await jmap(calls);
    if (app.openId !== id) return; // the user moved on meanwhile
    const trash = app.roles.trash;
    const inTrash = app.view.mailboxId === trash && !app.view.search;
    let emails = r.e.list.filter((e) => inTrash || e.id === id || !(e.mailboxIds || {})[trash]);
    emails.sort((a, b) => (a.receivedAt < b.receivedAt ? -1 : 1));
    if (!emails.length) emails = r.e.list;
    app.open = { threadId: email.threadId, emails, focus: id, expanded: new Set([id]) };
    for (const e of emails) if (!(e.keywords && e.keywords.$seen)) app.open.expanded.add(e.id);
    if (unread) {
      email.keywords = { ...email.keywords, $seen: true };
      const fresh = r.e.list.find((e) => e.id === id);
      if (fresh) fresh.keywords = { ...fresh.keywords, $seen: true };
      for (const m of r.m.list) app.mailboxes.set(m.id, m);
      renderFolders();
      markOpenRow();
    }
    renderReader();
    document.body.dataset.openMs = String(Math.round(performance.now() - started));
    // Other unread messages of the conversation are read now too (not waited for).
    const others = emails.filter((e) => e.id !== id && !(e.keywords && e.keywords.$seen)).map((e) => e.id);
    if (others.length) setKeyword(others, '$seen', true, { quiet: true });
  } catch (error) {
    showError(error);
  }
}

function markOpenRow() {
  for (const row of $('messages').children) {
    const e = listed(row.dataset.id);
    row.classList.toggle('open', row.dataset.id === app.openId);
    row.setAttribute('aria-selected', row.dataset.id === app.openId ? 'true' : 'false');
    if (e) {
      const unread = !(e.keywords && e.keywords.$seen);
      const flagged = !!(e.keywords && e.keywords.$flagged);
      row.classList.toggle('unread', unread);
      row.classList.toggle('flagged', flagged);
      row.dataset.unread = unread ? 'true' : 'false';
      row.dataset.flagged = flagged ? 'true' : 'false';
      const star = row.querySelector('.star');
      if (star) star.classList.toggle('on', flagged);
    }
  }
  const rows = $('messages').children;
  for (let i = 0; i < rows.length; i++) rows[i].classList.toggle('cursor', i === app.cursor);
}

function focused() {
  if (!app.open) return null;
  return app.open.emails.find((e) => e.id === app.open.focus) || app.open.emails[app.open.emails.length - 1];
}

function showReader() {
  $('app').dataset.view = 'reader';
  $('reader-empty').hidden = true;
  $('reader-toolbar').hidden = false;
  if (NARROW.matches && !(history.state && history.state.reader)) history.pushState({ reader: true }, '');
}

function closeReader() {
  app.open = null;
  app.openId = null;
  $('app').dataset.view = 'list';
  $('message').hidden = true;
  $('message').replaceChildren();
  $('reader-empty').hidden = false;
  $('reader-toolbar').hidden = true;
  markOpenRow();
}

function renderReader() {
  const article = $('message');
  const focus = focused();
  const subject = (focus && focus.subject) || '(no subject)';
  const flagged = !!(focus && focus.keywords && focus.keywords.$flagged);
  const header = el('header', { class: 'thread-header' },
    el('h1', { class: 'thread-subject', text: subject, 'data-test': 'message-subject' }),
    el('div', { class: 'thread-chips' },
      ...Object.keys((focus && focus.mailboxIds) || {}).map((id) => app.mailboxes.get(id)).filter(Boolean)
        .map((m) => el('span', { class: 'chip', text: displayName(m) }))));
  const cards = app.open.emails.map((e) => renderCard(e));
  article.replaceChildren(header, ...cards);
  article.hidden = false;
  // Toolbar state: the star and read buttons say what pressing them does.
  const star = document.querySelector('[data-action="toggleFlag"]');
  star.classList.toggle('on', flagged);
  star.title = flagged ? 'Unstar (s)' : 'Star (s)';
  star.setAttribute('aria-pressed', flagged ? 'true' : 'false');
  $('reader-scroll').scrollTop = 0;
  const open = article.querySelector('.card.expanded:last-of-type') || article.querySelector('.card.expanded');
  if (open && app.open.emails.length > 1) open.scrollIntoView({ block: 'start' });
}

function renderCard(e) {
  const expanded = app.open.expanded.has(e.id);
  const from = (e.from || [])[0];
  const head = el('div', { class: 'card-head', role: 'button', tabindex: '0', 'aria-expanded': expanded ? 'true' : 'false' },
    el('span', { class: 'avatar', 'aria-hidden': 'true', text: (addressShort(from) || '?').trim().charAt(0).toUpperCase() }),
    el('span', { class: 'card-from' },
      el('strong', { text: addressShort(from) || '(unknown sender)' }),
      from && from.name ? el('span', { class: 'muted', text: ` <${from.email}>` }) : null),
    el('span', { class: 'card-date', text: longDate(e.receivedAt) }),
    expanded ? null : el('span', { class: 'card-preview', text: e.preview || '' }));
  const toggle = () => {
    if (app.open.expanded.has(e.id)) app.open.expanded.delete(e.id);
    else { app.open.expanded.add(e.id); app.open.focus = e.id; }
    renderReader();
  };
  head.addEventListener('click', toggle);
  head.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); toggle(); } });
  const card = el('section', { class: `card${expanded ? ' expanded' : ''}`, 'data-test': 'message-card', 'data-id': e.id }, head);
  if (!expanded) return card;
  const recipients = el('dl', { class: 'recipients' },
    el('dt', { text: 'To' }), el('dd', { text: addressList(e.to) || '—' }),
    e.cc && e.cc.length ? [el('dt', { text: 'Cc' }), el('dd', { text: addressList(e.cc) })] : null,
    e.replyTo && e.replyTo.length ? [el('dt', { text: 'Reply-To' }), el('dd', { text: addressList(e.replyTo) })] : null);
  card.appendChild(recipients);
  card.appendChild(hasHtml(e) ? htmlBody(e) : textBody(e));
  const attachments = (e.attachments || []).filter((p) => p.blobId);
  if (attachments.length) {
    card.appendChild(el('ul', { class: 'attachments', 'data-test': 'attachments' }, attachments.map((p) => el('li', {},
      el('a', {
        class: 'attachment', href: downloadUrl(p.blobId, p.name, p.type), download: p.name || 'attachment',
        'data-test': 'attachment', title: `Download ${p.name || 'attachment'}`,
      }, icon('download'), el('span', { class: 'attachment-name', text: p.name || 'attachment' }),
      el('span', { class: 'muted', text: sizeText(p.size || 0) }))))));
  }
  card.appendChild(el('div', { class: 'card-actions' },
    el('button', { type: 'button', class: 'button ghost', onclick: () => startCompose('reply', e) }, icon('reply'), 'Reply'),
    el('button', { type: 'button', class: 'button ghost', onclick: () => startCompose('replyAll', e) }, icon('reply-all'), 'Reply all'),
    el('button', { type: 'button', class: 'button ghost', onclick: () => startCompose('forward', e) }, icon('forward'), 'Forward')));
  return card;
}

// Plain text with its links made clickable and quoted lines set apart; built from text nodes only.
function textBody(e) {
  const text = (e.textBody || []).map((p) => (e.bodyValues && e.bodyValues[p.partId] ? e.bodyValues[p.partId].value : ''))
    .join('\n').replace(/\r\n/g, '\n').replace(/\s+$/, '');
  const body = el('div', { class: 'text-body', 'data-test': 'message-body' });
  for (const line of text.split('\n')) {
    const quoted = /^\s*>/.test(line);
    const node = el('div', { class: quoted ? 'quote-line' : 'line' });
    let rest = line;
    const link = /\bhttps?:\/\/[^\s<>"]+[^\s<>".,;:!?)\]]/i;
    for (let m = rest.match(link); m; m = rest.match(link)) {
      node.append(rest.slice(0, m.index));
      node.append(el('a', { href: m[0], target: '_blank', rel: 'noopener noreferrer', text: m[0] }));
      rest = rest.slice(m.index + m[0].length);
    }
    node.append(rest || '\u200b');
    body.appendChild(node);
  }
  return body;
}

// An HTML body: the server's sanitised copy in a sandbox without scripts or same origin.
function htmlBody(e, images) {
  const wrap = el('div', { class: 'html-wrap' });
  const src = `/webmail/html/${encodeURIComponent(e.id)}?images=${images ? 1 : 0}`;
  const frame = el('iframe', {
    class: 'html-body', src, sandbox: 'allow-popups allow-popups-to-escape-sandbox', referrerpolicy: 'no-referrer',
    title: 'Message body', loading: 'eager', 'data-test': 'message-html',
  });
  if (!images) {
    const banner = el('div', { class: 'images-banner', hidden: true, 'data-test': 'images-banner' },
      icon('image'), el('span', { text: 'Remote images are hidden to protect your privacy.' }),
      el('button', {
        type: 'button', class: 'button link', 'data-test': 'show-images',
        onclick: () => wrap.replaceWith(htmlBody(e, true)),
      }, 'Show images'));
    wrap.appendChild(banner);
    // The server says how many remote images it held back (header X-Mailbus-Blocked-Images).
    fetch(src, { method: 'HEAD', credentials: 'same-origin' }).then((response) => {
      const count = response.headers.get('X-Mailbus-Blocked-Images');
      if (count === null || Number(count) > 0) banner.hidden = false;
    }).catch(() => { banner.hidden = false; });
  }
  wrap.appendChild(frame);
  return wrap;
}

/* ------------------------------------------------------------------ flags, moving, deleting */

function allKnown(id) {
  const out = [];
  const item = listed(id);
  if (item) out.push(item);
  if (app.open) for (const e of app.open.emails) if (e.id === id) out.push(e);
  return out;
}

async function setKeyword(ids, keyword, on, options = {}) {
  if (!ids.length) return;
  const update = {};
  for (const id of ids) update[id] = { [`keywords/${keyword}`]: on ? true : null };
  // Show it at once; the server's answer (or a push) corrects it if it failed.
  for (const id of ids) {
    for (const e of allKnown(id)) {
      const k = { ...(e.keywords || {}) };
      if (on) k[keyword] = true;
      else delete k[keyword];
      e.keywords = k;
    }
  }
  markOpenRow();
  if (app.open) renderReaderToolbar();
  await guard(async () => {
    const calls = [['Email/set', { update }, 's']];
    if (keyword === '$seen') calls.push(['Mailbox/get', { ids: null, properties: MAILBOX_PROPERTIES }, 'm']);
    const r = await jmap(calls);
    checkSet(r.s, 'The change was not saved');
    if (r.m) { setMailboxes(r.m.list); renderFolders(); }
    if (!options.quiet) {
      const what = { $flagged: on ? 'Starred' : 'Star removed', $seen: on ? 'Marked as read' : 'Marked as unread' }[keyword];
      if (what) toast(`${what}.`);
    }
  });
}

function renderReaderToolbar() {
  const e = focused();
  if (!e) return;
  const flagged = !!(e.keywords && e.keywords.$flagged);
  const star = document.querySelector('[data-action="toggleFlag"]');
  star.classList.toggle('on', flagged);
  star.title = flagged ? 'Unstar (s)' : 'Star (s)';
}

// The ids an action on the selected conversation applies to: the thread's emails in the folder shown
// (all of them in search results); with no conversation open, the highlighted row.
function targetIds(id) {
  const email = listed(id);
  if (!email) return [id];
  if (app.open && app.open.threadId === email.threadId) {
    const here = app.open.emails.filter((e) => app.view.search || (e.mailboxIds || {})[app.view.mailboxId]).map((e) => e.id);
    if (here.length) return here;
  }
  return [id];
}

function selectedId() {
  if (app.openId) return app.openId;
  const row = app.items[app.cursor];
  return row ? row.id : null;
}

async function moveThread(id, target, options = {}) {
  if (!id || !target) return;
  const from = app.view.search ? null : app.view.mailboxId;
  if (from === target) return;
  const ids = targetIds(id);
  const update = {};
  const undo = {};
  for (const eid of ids) {
    const known = allKnown(eid)[0];
    const original = known ? known.mailboxIds : null;
    update[eid] = from ? { [`mailboxIds/${from}`]: null, [`mailboxIds/${target}`]: true } : { mailboxIds: { [target]: true } };
    if (original) undo[eid] = { mailboxIds: original };
  }
  await guard(async () => {
    const r = await jmap([['Email/set', { update }, 's'], ['Mailbox/get', { ids: null, properties: MAILBOX_PROPERTIES }, 'm']]);
    checkSet(r.s, 'The message was not moved');
    setMailboxes(r.m.list);
    renderFolders();
    afterRemoval(id);
    const name = displayName(app.mailboxes.get(target));
    toast(options.message || `Moved to ${name}.`, Object.keys(undo).length ? 'Undo' : null, async () => {
      await guard(async () => {
        const back = await jmap([['Email/set', { update: undo }, 's']]);
        checkSet(back.s, 'The move was not undone');
        await Promise.all([refreshMailboxes(), loadList()]);
      });
    });
  });
}

// Takes a conversation out of the list after a move or delete and shows the next one, like a mail program.
function afterRemoval(id) {
  const at = app.items.findIndex((e) => e.id === id);
  const wasOpen = app.openId === id;
  if (at >= 0) {
    app.items.splice(at, 1);
    app.total = Math.max(0, app.total - 1);
    if (app.cursor >= app.items.length) app.cursor = app.items.length - 1;
  }
  renderList();
  if (wasOpen) {
    const next = app.items[app.cursor];
    if (next && !NARROW.matches) openMessage(next.id);
    else { closeReader(); if (NARROW.matches && history.state && history.state.reader) history.back(); }
  }
  // Refill the page from the server so that the list stays PAGE_SIZE long.
  clearTimeout(app.refillTimer);
  app.refillTimer = setTimeout(() => loadList(), 400);
}

async function archiveSelected() {
  const id = selectedId();
  const archive = app.roles.archive;
  if (!id) return;
  if (!archive) return toast('There is no Archive folder.');
  await moveThread(id, archive, { message: 'Archived.' });
}

async function deleteSelected() {
  const id = selectedId();
  if (!id) return;
  const trash = app.roles.trash;
  if (trash && (app.view.search || app.view.mailboxId !== trash)) {
    await moveThread(id, trash, { message: 'Moved to Trash.' });
    return;
  }
  const ids = targetIds(id);
  const ok = await askText('Delete forever', `Delete ${plural(ids.length, 'message')} permanently? This cannot be undone.`, null, 'Delete');
  if (ok === null) return;
  await guard(async () => {
    const r = await jmap([['Email/set', { destroy: ids }, 's'], ['Mailbox/get', { ids: null, properties: MAILBOX_PROPERTIES }, 'm']]);
    checkSet(r.s, 'The message was not deleted');
    setMailboxes(r.m.list);
    renderFolders();
    afterRemoval(id);
    toast(`${plural(ids.length, 'message')} deleted.`);
  });
}

async function toggleFlagSelected() {
  const id = app.open ? (focused() || {}).id : selectedId();
  if (!id) return;
  const e = (app.open && focused()) || listed(id);
  await setKeyword([id], '$flagged', !(e.keywords && e.keywords.$flagged));
}

async function toggleUnreadSelected() {
  const id = selectedId();
  if (!id) return;
  const e = listed(id);
  const unread = !(e && e.keywords && e.keywords.$seen);
  const ids = targetIds(id);
  await setKeyword(ids, '$seen', unread);
  // Marking unread while reading goes back to the list, so the message stays unread.
  if (!unread && app.openId === id) {
    closeReader();
    if (NARROW.matches && history.state && history.state.reader) history.back();
  }
}

/* ------------------------------------------------------------------ compose, reply, forward */

function ownAddresses() {
  const own = new Set([app.username.toLowerCase()]);
  for (const i of app.identities) own.add((i.email || '').toLowerCase());
  return own;
}

function prefixed(prefix, subject) {
  const s = subject || '';
  return new RegExp(`^${prefix}:`, 'i').test(s) ? s : `${prefix}: ${s}`;
}

function bodyText(e) {
  const parts = (e.textBody || []).map((p) => {
    const value = e.bodyValues && e.bodyValues[p.partId] ? e.bodyValues[p.partId].value : '';
    return p.type === 'text/html' ? htmlToText(value) : value;
  });
  return parts.join('\n').replace(/\r\n/g, '\n');
}

function startCompose(mode, original) {
  const e = original || focused();
  if (mode !== 'new' && !e) return;
  const own = ownAddresses();
  const notOwn = (a) => a && a.email && !own.has(a.email.toLowerCase());
  const state = { mode, attachments: [], inReplyTo: null, references: null, originalId: e ? e.id : null };
  let to = [];
  let cc = [];
  let subject = '';
  let body = '';
  if (mode === 'reply' || mode === 'replyAll') {
    const sender = e.replyTo && e.replyTo.length ? e.replyTo : e.from || [];
    to = sender.slice();
    if (mode === 'replyAll') {
      const seen = new Set(to.map((a) => a.email.toLowerCase()));
      for (const a of [...(e.to || []), ...(e.cc || [])]) {
        if (notOwn(a) && !seen.has(a.email.toLowerCase())) { cc.push(a); seen.add(a.email.toLowerCase()); }
      }
    }
    // Replying to one's own sent message goes to its recipients.
    if (!to.some(notOwn)) to = (e.to || []).filter(notOwn);
    subject = prefixed('Re', e.subject);
    const quoted = bodyText(e).split('\n').map((l) => `> ${l}`).join('\n');
    body = `\n\nOn ${longDate(e.sentAt || e.receivedAt)}, ${addressText((e.from || [])[0])} wrote:\n${quoted}\n`;
    state.inReplyTo = e.messageId || null;
    state.references = [...(e.references || []), ...(e.messageId || [])];
  } else if (mode === 'forward') {
    subject = prefixed('Fwd', e.subject);
    body = ['', '', '---------- Forwarded message ----------', `From: ${addressList(e.from)}`,
      `Date: ${longDate(e.sentAt || e.receivedAt)}`, `Subject: ${e.subject || ''}`, `To: ${addressList(e.to)}`,
      e.cc && e.cc.length ? `Cc: ${addressList(e.cc)}` : null, '', bodyText(e), ''].filter((l) => l !== null).join('\n');
    state.references = [...(e.references || []), ...(e.messageId || [])];
    // The original's attachments go along, by their blob ids (no upload needed).
    for (const p of e.attachments || []) {
      if (p.blobId) state.attachments.push({ blobId: p.blobId, name: p.name || 'attachment', type: p.type, size: p.size || 0, ready: true });
    }
  }
  app.compose = state;
  $('compose-title').textContent = { new: 'New message', reply: 'Reply', replyAll: 'Reply all', forward: 'Forward' }[mode];
  $('compose-to').value = to.map(addressText).join(', ');
  $('compose-cc').value = cc.map(addressText).join(', ');
  $('compose-subject').value = subject;
  $('compose-body').value = body;
  $('compose-error').hidden = true;
  $('compose-send').disabled = false;
  const from = $('compose-from');
  from.replaceChildren(...app.identities.map((i) => el('option', { value: i.id, text: addressText({ name: i.name, email: i.email }) })));
  if (!app.identities.length) from.appendChild(el('option', { value: '', text: app.username }));
  renderComposeAttachments();
  $('compose').showModal();
  const target = mode === 'forward' || !to.length ? $('compose-to') : $('compose-body');
  target.focus();
  if (target === $('compose-body')) target.setSelectionRange(0, 0);
}

function renderComposeAttachments() {
  const list = $('compose-attachments');
  const items = (app.compose ? app.compose.attachments : []).map((a, index) => el('li', {
    class: `attachment${a.ready ? '' : ' uploading'}${a.error ? ' failed' : ''}`, 'data-test': 'compose-attachment',
  },
  icon('paperclip'), el('span', { class: 'attachment-name', text: a.name }),
  el('span', { class: 'muted', text: a.error ? 'upload failed' : a.ready ? sizeText(a.size) : 'uploading…' }),
  el('button', {
    type: 'button', class: 'icon-button small', title: `Remove ${a.name}`, 'aria-label': `Remove ${a.name}`,
    onclick: () => { app.compose.attachments.splice(index, 1); renderComposeAttachments(); },
  }, icon('close'))));
  list.replaceChildren(...items);
}

async function addFiles(files) {
  const state = app.compose;
  for (const file of files) {
    const entry = { name: file.name, type: file.type || 'application/octet-stream', size: file.size, ready: false };
    state.attachments.push(entry);
    renderComposeAttachments();
    try {
      const blob = await upload(file);
      entry.blobId = blob.blobId;
      entry.type = blob.type || entry.type;
      entry.ready = true;
    } catch (error) {
      entry.error = true;
      composeError(error.message);
    }
    renderComposeAttachments();
  }
}

function composeError(text) {
  const box = $('compose-error');
  box.textContent = text;
  box.hidden = false;
}

async function sendCompose() {
  const state = app.compose;
  if (!state) return;
  const to = parseAddresses($('compose-to').value);
  const cc = parseAddresses($('compose-cc').value);
  const bad = [...to.bad, ...cc.bad];
  if (bad.length) return composeError(`Not an email address: ${bad.join(', ')}`);
  if (!to.addresses.length && !cc.addresses.length) return composeError('Add at least one recipient.');
  if (state.attachments.some((a) => !a.ready && !a.error)) return composeError('Wait until the attachments are uploaded.');
  const { drafts, sent } = app.roles;
  if (!drafts || !sent) return composeError('This account has no Drafts or Sent folder.');
  const identity = app.identities.find((i) => i.id === $('compose-from').value) || app.identities[0];
  if (!identity) return composeError('This account has no identity to send as.');
  const draft = {
    mailboxIds: { [drafts]: true },
    keywords: { $draft: true, $seen: true },
    from: [identity.name ? { name: identity.name, email: identity.email } : { email: identity.email }],
    to: to.addresses,
    subject: $('compose-subject').value,
    bodyValues: { body: { value: $('compose-body').value } },
    textBody: [{ partId: 'body', type: 'text/plain' }],
  };
  if (cc.addresses.length) draft.cc = cc.addresses;
  if (state.inReplyTo && state.inReplyTo.length) draft.inReplyTo = state.inReplyTo;
  if (state.references && state.references.length) draft.references = state.references;
  const files = state.attachments.filter((a) => a.ready);
  if (files.length) {
    draft.attachments = files.map((a) => ({ blobId: a.blobId, type: a.type, name: a.name, disposition: 'attachment' }));
  }
  const calls = [
    ['Email/set', { create: { draft } }, 'd'],
    ['EmailSubmission/set', {
      create: { send: { identityId: identity.id, emailId: '#draft' } },
      onSuccessUpdateEmail: { '#send': { [`mailboxIds/${drafts}`]: null, [`mailboxIds/${sent}`]: true, 'keywords/$draft': null } },
    }, 's'],
  ];
  const answered = { reply: '$answered', replyAll: '$answered', forward: '$forwarded' }[state.mode];
  if (answered && state.originalId) {
    calls.push(['Email/set', { update: { [state.originalId]: { [`keywords/${answered}`]: true } } }, 'k']);
  }
  $('compose-send').disabled = true;
  $('compose-send').textContent = 'Sending…';
  try {
    const r = await jmap(calls);
    checkSet(r.d, 'The message could not be saved');
    checkSet(r.s, 'The message could not be sent');
    app.compose = null;
    $('compose').close();
    toast('Message sent.');
    refreshSoon();
  } catch (error) {
    composeError(error.message);
  } finally {
    $('compose-send').disabled = false;
    $('compose-send').textContent = 'Send';
  }
}

async function discardCompose() {
  const state = app.compose;
  const dirty = state && ($('compose-body').value.trim() || $('compose-to').value.trim()) && state.mode === 'new';
  if (dirty) {
    const ok = await askText('Discard message', 'Discard this message?', null, 'Discard');
    if (ok === null) return;
  }
  app.compose = null;
  $('compose').close();
}

/* ------------------------------------------------------------------ search */

function search(text) {
  const q = text.trim();
  if (!q) return clearSearch();
  app.view = { mailboxId: app.view.mailboxId, search: q };
  $('search-clear').hidden = false;
  app.position = 0;
  closeReader();
  renderFolders();
  loadList({ resetCursor: true });
}

function clearSearch() {
  $('search-input').value = '';
  $('search-clear').hidden = true;
  if (app.view.search) openFolder(app.view.mailboxId || app.roles.inbox);
}

/* ------------------------------------------------------------------ feedback */

let toastTimer = 0;

// The vacation reply (RFC 8621 §8 VacationResponse, the account's singleton). The dialog shows days; the
// reply runs from the start of the first day to the end of the last, in UTC as JMAP's UTCDate is.
async function openVacation() {
  const { v } = await jmap([['VacationResponse/get', { ids: ['singleton'] }, 'v']]);
  const vacation = (v.list && v.list[0]) || {};
  $('vacation-enabled').checked = !!vacation.isEnabled;
  $('vacation-from').value = vacation.fromDate ? vacation.fromDate.slice(0, 10) : '';
  $('vacation-to').value = vacation.toDate ? vacation.toDate.slice(0, 10) : '';
  $('vacation-subject').value = vacation.subject || '';
  $('vacation-body').value = vacation.textBody || '';
  $('vacation-error').hidden = true;
  const dialog = $('vacation');
  dialog.returnValue = '';
  dialog.showModal();
}

async function saveVacation() {
  const from = $('vacation-from').value;
  const to = $('vacation-to').value;
  const error = $('vacation-error');
  if (from && to && to < from) {
    error.textContent = 'The last day is before the first.';
    error.hidden = false;
    return false;
  }
  const update = {
    isEnabled: $('vacation-enabled').checked,
    fromDate: from ? `${from}T00:00:00Z` : null,
    toDate: to ? `${to}T23:59:59Z` : null,
    subject: $('vacation-subject').value.trim() || null,
    textBody: $('vacation-body').value || null,
  };
  try {
    const { v } = await jmap([['VacationResponse/set', { update: { singleton: update } }, 'v']]);
    checkSet(v, 'Vacation reply');
  } catch (e) {
    error.textContent = e.message || String(e);
    error.hidden = false;
    return false;
  }
  toast(update.isEnabled ? 'Vacation reply is on' : 'Vacation reply is off');
  return true;
}

function toast(text, actionLabel, action) {
  const box = $('toast');
  $('toast-text').textContent = text;
  const button = $('toast-action');
  button.hidden = !actionLabel;
  button.textContent = actionLabel || '';
  button.onclick = action ? () => { box.hidden = true; action(); } : null;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, actionLabel ? 8000 : 4000);
}

function showError(error) {
  if (error && error.type === 'unauthorized') return;
  toast((error && error.message) || 'Something went wrong.');
  console.error(error);
}

async function guard(work) {
  try {
    await work();
  } catch (error) {
    showError(error);
  }
}

function setBusy(on) {
  app.loading += on ? 1 : -1;
  document.body.classList.toggle('busy', app.loading > 0);
}

/* ------------------------------------------------------------------ live updates (RFC 8620 §7.3) */

function refreshSoon() {
  clearTimeout(app.refreshTimer);
  app.refreshTimer = setTimeout(refreshAll, 150);
}

async function refreshAll() {
  await guard(async () => {
    const calls = [['Mailbox/get', { ids: null, properties: MAILBOX_PROPERTIES }, 'm'], ...listCalls(currentFilter(), app.position)];
    const seq = ++app.seq;
    const keepId = app.items[app.cursor] ? app.items[app.cursor].id : null;
    const before = new Set(app.items.map((e) => e.id));
    const r = await jmap(calls);
    if (seq !== app.seq) return;
    setMailboxes(r.m.list);
    if (!app.view.search && !app.mailboxes.has(app.view.mailboxId)) return openFolder(app.roles.inbox);
    takeList(r);
    const at = keepId ? app.items.findIndex((e) => e.id === keepId) : -1;
    app.cursor = at >= 0 ? at : Math.min(Math.max(app.cursor, 0), app.items.length - 1);
    renderFolders();
    renderList(before);
    markOpenRow();
  });
}

function connectEvents() {
  const template = (app.session && app.session.eventSourceUrl) || '/jmap/eventsource?types={types}&closeafter={closeafter}&ping={ping}';
  const url = template.replace('{types}', '*').replace('{closeafter}', 'no').replace('{ping}', '30');
  const status = $('connection');
  const events = new EventSource(url, { withCredentials: true });
  app.events = events;
  events.addEventListener('open', () => {
    status.textContent = '';
    status.classList.remove('offline');
    document.body.dataset.live = 'open';
  });
  events.addEventListener('state', () => refreshSoon());
  events.addEventListener('error', () => {
    document.body.dataset.live = 'closed';
    status.textContent = 'Reconnecting…';
    status.classList.add('offline');
    if (events.readyState === EventSource.CLOSED) {
      // The browser gave up (for example a 401): check the session, then open a new stream.
      setTimeout(async () => {
        const response = await fetch('/webmail/session', { credentials: 'same-origin' }).catch(() => null);
        if (response && response.status === 401) return endSession();
        connectEvents();
        refreshSoon();
      }, 5000);
    }
  });
}

/* ------------------------------------------------------------------ keyboard */

let pendingG = false;

function typing(target) {
  return target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}

function onKey(event) {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey) && app.compose && $('compose').open) {
    event.preventDefault();
    sendCompose();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.querySelector('dialog[open]')) return;
  if (typing(event.target)) {
    if (event.key === 'Escape' && event.target.id === 'search-input') { event.target.blur(); clearSearch(); }
    return;
  }
  if (pendingG) {
    pendingG = false;
    const role = { i: 'inbox', s: 'sent', d: 'drafts', a: 'archive', t: 'trash' }[event.key];
    if (role && app.roles[role]) { event.preventDefault(); openFolder(app.roles[role]); }
    return;
  }
  const actions = {
    j: () => moveCursor(1),
    ArrowDown: () => moveCursor(1),
    k: () => moveCursor(-1),
    ArrowUp: () => moveCursor(-1),
    Enter: () => { const e = app.items[app.cursor]; if (e) openMessage(e.id); },
    o: () => { const e = app.items[app.cursor]; if (e) openMessage(e.id); },
    Escape: () => back(),
    u: () => toggleUnreadSelected(),
    c: () => startCompose('new'),
    r: () => app.open && startCompose('reply'),
    a: () => app.open && startCompose('replyAll'),
    f: () => app.open && startCompose('forward'),
    e: () => archiveSelected(),
    '#': () => deleteSelected(),
    Delete: () => deleteSelected(),
    s: () => toggleFlagSelected(),
    v: () => { if (selectedId()) { if (!app.open) openMessage(selectedId()); $('move-select').focus(); } },
    n: () => page(1),
    p: () => page(-1),
    '/': () => { $('search-input').focus(); $('search-input').select(); },
    '?': () => $('help').showModal(),
    g: () => { pendingG = true; setTimeout(() => { pendingG = false; }, 1500); },
  };
  const action = actions[event.key];
  if (!action) return;
  event.preventDefault();
  action();
}

function back() {
  if (!app.open) return;
  if (NARROW.matches && history.state && history.state.reader) history.back();
  else closeReader();
}

/* ------------------------------------------------------------------ narrow screens */

function openDrawer() {
  $('app').classList.add('drawer-open');
  $('scrim').hidden = false;
}

function closeDrawer() {
  $('app').classList.remove('drawer-open');
  $('scrim').hidden = true;
}

/* ------------------------------------------------------------------ start */

// Only a logout the server confirmed (its 303 to the login page) leaves the app: on a refusal or an
// outage the session may still be alive, and saying otherwise would leave it open on a shared computer.
async function logout() {
  const response = await fetch('/webmail/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': app.csrf } })
    .catch(() => null);
  if (!response || !response.ok) {
    toast('Logging out failed. You are still logged in; try again.');
    return;
  }
  if (app.events) app.events.close();
  location.replace('/?logged_out=1');
}

function wire() {
  fillIcons(document);
  document.addEventListener('keydown', onKey);
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); search($('search-input').value); $('search-input').blur(); });
  $('search-input').addEventListener('input', () => { $('search-clear').hidden = !$('search-input').value && !app.view.search; });
  $('search-clear').addEventListener('click', clearSearch);
  $('compose-button').addEventListener('click', () => { closeDrawer(); startCompose('new'); });
  $('compose-fab').addEventListener('click', () => startCompose('new'));
  $('new-folder').addEventListener('click', createFolder);
  $('logout-button').addEventListener('click', logout);
  $('logout-drawer').addEventListener('click', logout);
  $('help-button').addEventListener('click', () => $('help').showModal());
  $('vacation-button').addEventListener('click', () => openVacation().catch(showError));
  $('vacation-form').addEventListener('input', () => { $('vacation-error').hidden = true; });
  $('vacation-form').addEventListener('submit', async (e) => {
    if (e.submitter && e.submitter.value === 'save') {
      e.preventDefault();
      if (await saveVacation()) $('vacation').close('save');
    }
  });
  $('page-prev').addEventListener('click', () => page(-1));
  $('page-next').addEventListener('click', () => page(1));
  $('back-button').addEventListener('click', back);
  $('nav-toggle').addEventListener('click', openDrawer);
  $('scrim').addEventListener('click', closeDrawer);
  $('brand').addEventListener('click', (e) => { e.preventDefault(); if (app.roles.inbox) openFolder(app.roles.inbox); });
  $('move-select').addEventListener('change', (e) => {
    const target = e.target.value;
    e.target.value = '';
    e.target.blur();
    if (target) moveThread(selectedId(), target);
  });
  for (const button of document.querySelectorAll('[data-action]')) {
    button.addEventListener('click', () => {
      const act = {
        reply: () => startCompose('reply'), replyAll: () => startCompose('replyAll'), forward: () => startCompose('forward'),
        archive: archiveSelected, delete: deleteSelected, toggleUnread: toggleUnreadSelected, toggleFlag: toggleFlagSelected,
      }[button.dataset.action];
      if (act) act();
    });
  }
  $('compose-form').addEventListener('submit', (e) => { e.preventDefault(); sendCompose(); });
  $('compose-close').addEventListener('click', discardCompose);
  $('compose').addEventListener('cancel', (e) => { e.preventDefault(); discardCompose(); });
  $('compose-files').addEventListener('change', (e) => { addFiles([...e.target.files]); e.target.value = ''; });
  const body = $('compose');
  body.addEventListener('dragover', (e) => { if (app.compose) e.preventDefault(); });
  body.addEventListener('drop', (e) => {
    if (!app.compose || !e.dataTransfer.files.length) return;
    e.preventDefault();
    addFiles([...e.dataTransfer.files]);
  });
  window.addEventListener('popstate', () => { if (app.open && !(history.state && history.state.reader)) closeReader(); });
}

async function start() {
  wire();
  // The page preloads this (same mode and credentials, so the browser hands over that response).
  const response = await fetch('/webmail/session', { credentials: 'include', mode: 'cors' }).catch(() => null);
  if (!response || response.status === 401) return location.replace('/');
  if (!response.ok) return toast('The server could not start your session. Reload to try again.');
  const session = await response.json();
  app.username = session.username;
  app.accountId = session.accountId;
  app.csrf = session.csrfToken;
  app.session = session.session || {};
  $('account-name').textContent = app.username;
  // The folders, identities and (when the inbox id is known from the last visit) the first page, in one request.
  let inbox = session.inboxId || null;
  if (!inbox) {
    try { inbox = localStorage.getItem(`mailbus.inbox.${app.accountId}`); } catch (_) { inbox = null; }
  }
  const calls = [
    ['Mailbox/get', { ids: null, properties: MAILBOX_PROPERTIES }, 'm'],
    ['Identity/get', {}, 'i'],
  ];
  if (inbox) calls.push(...listCalls({ inMailbox: inbox }, 0));
  await guard(async () => {
    let r;
    try {
      r = await jmap(calls);
    } catch (error) {
      // A stale remembered inbox fails the listing calls: ask again without them.
      if (!inbox || error.type === 'unauthorized' || error.type === 'network') throw error;
      inbox = null;
      r = await jmap(calls.slice(0, 2));
    }
    setMailboxes(r.m.list);
    app.identities = r.i.list || [];
    app.view = { mailboxId: app.roles.inbox || (r.m.list[0] || {}).id, search: '' };
    renderFolders();
    if (!inbox || inbox !== app.roles.inbox) r = await jmap(listCalls(currentFilter(), 0));
    takeList(r);
    app.cursor = app.items.length ? 0 : -1;
    renderList();
    performance.mark('mailbus:first-screen');
    document.body.dataset.ready = 'true';
  });
  connectEvents();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
