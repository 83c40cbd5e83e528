// envsync dashboard: key names, branches and history from the server's JSON API.
//
// Rules this file keeps:
// - The token lives in sessionStorage and goes out only as the Authorization header of
//   same-origin fetches (credentials omitted: no cookie). It is never put in an address.
// - Every name, email or message from the server becomes text (textContent, or the text
//   nodes of h() below); no string is ever parsed as markup. The server's policy (Trusted
//   Types) makes the browser refuse it anyway.
// - Nothing here decrypts, and nothing asks for a passphrase or an identity.
'use strict';

(() => {
  const TOKEN_KEY = 'envsync.token';
  const state = { token: null, who: null, seq: 0 };

  // ---- DOM helpers -------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  // h('a', {href: '#/'}, 'text', child…): attributes are set one by one, children that
  // are strings become text nodes.
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function announce(text) {
    const s = $('status');
    s.textContent = '';
    // A fresh text node makes screen readers speak the same message twice in a row.
    window.setTimeout(() => { s.textContent = text; }, 30);
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

  // A time in the viewer's zone; the UTC value on hover.
  function when(iso) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return h('span', null, iso);
    const utc = iso.replace('T', ' ').replace(/Z$/, ' UTC');
    return h('time', { datetime: iso, title: utc }, dateFormat.format(d));
  }

  const enc = encodeURIComponent;
  const projectHref = (p) => '#/p/' + enc(p);
  const matrixHref = (p) => '#/p/' + enc(p) + '/matrix';
  const historyHref = (p, b) => '#/p/' + enc(p) + '/b/' + enc(b);

  // A word for the shell: quoted unless it is plainly safe.
  function shellWord(s) {
    return /^[A-Za-z0-9._\/-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
  }

  function scrollRegion(label, table) {
    return h('div', { class: 'scroll', role: 'region', 'aria-label': label, tabindex: '0' }, table);
  }

  function headRow(...names) {
    return h('thead', null, h('tr', null, names.map((n) => h('th', { scope: 'col' }, n))));
  }

  // ---- API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || 'the server answered ' + status);
      this.status = status;
      this.code = body && body.error;
    }
  }

  async function api(method, path, body, token) {
    const headers = { Authorization: 'Bearer ' + (token || state.token), Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (_) { data = null; }
    }
    if (response.status === 401 && !token) {
      signOut('The server no longer accepts this token (expired, revoked or unknown). Sign in again.');
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  const isOwner = () => state.who && state.who.role === 'owner';
  const isAdmin = () => isOwner() && state.who.project_ids.length === 0;

  // ---- Sign in and out ---------------------------------------------------------------

  async function signIn(token) {
    const who = await api('GET', '/whoami', undefined, token);
    state.token = token;
    state.who = who;
    sessionStorage.setItem(TOKEN_KEY, token);
    showSignedIn();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.who = null;
    state.seq += 1;
    $('view').replaceChildren();
    $('view').hidden = true;
    $('nav').hidden = true;
    $('who').hidden = true;
    $('who-text').textContent = '';
    $('signin').hidden = false;
    $('signin-error').textContent = message || '';
    document.title = 'Sign in — envsync';
    $('token').focus();
  }

  function showSignedIn() {
    const who = state.who;
    $('signin').hidden = true;
    $('signin-error').textContent = '';
    $('nav').hidden = false;
    for (const li of document.querySelectorAll('[data-owner]')) li.hidden = !isOwner();
    const scope = who.project_ids.length ? ' · ' + who.project_ids.join(', ') : (isOwner() ? ' · every project' : '');
    $('who-text').textContent = who.email + ' (' + who.role + scope + ')';
    $('who').hidden = false;
    $('view').hidden = false;
    route();
  }

  // ---- Views -------------------------------------------------------------------------

  // Starts a view: a section with its heading, mounted at once; `alive()` turns false when
  // the user has moved on, so late answers are dropped.
  function view(title, ...intro) {
    const seq = ++state.seq;
    const heading = h('h1', { tabindex: '-1' }, title);
    const section = h('section', { class: 'view' }, heading, ...intro);
    $('view').replaceChildren(section);
    document.title = title + ' — envsync';
    heading.focus({ preventScroll: true });
    return { section, alive: () => seq === state.seq && state.token !== null };
  }

  function failure(e) {
    const text = e instanceof ApiError ? e.message : 'The server could not be reached.';
    return h('p', { class: 'error', role: 'alert' }, text);
  }

  function markNav(section) {
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  function ownersOnly(title, what) {
    const v = view(title);
    v.section.append(h('p', null, what + ' is for owner tokens; this is a ' + state.who.role + ' token.'));
  }

  // Projects: each with its branch count and last push.
  async function projectsView() {
    markNav('projects');
    const v = view('Projects');
    const table = h('table', null,
      h('caption', { class: 'sr' }, 'Projects this token may read'),
      headRow('Project', 'Branches', 'Last push', 'By', 'When'));
    const body = h('tbody');
    table.append(body);
    const more = h('button', { type: 'button', hidden: true }, 'More projects');
    const note = h('p', { class: 'muted' }, 'Loading…');
    v.section.append(note, scrollRegion('Projects', table), more);
    let after = null;
    async function load() {
      try {
        const page = await api('GET', '/projects?limit=50' + (after ? '&after=' + enc(after) : ''));
        if (!v.alive()) return;
        for (const p of page.projects) {
          const last = p.last_push;
          body.append(h('tr', null,
            h('th', { scope: 'row' }, h('a', { href: projectHref(p.project) }, p.project)),
            h('td', { class: 'num' }, String(p.branch_count)),
            h('td', null, last ? h('a', { href: historyHref(p.project, last.branch) }, last.branch, ' v' + last.version) : h('span', { class: 'muted' }, 'no env yet')),
            h('td', null, last ? last.pushed_by : ''),
            h('td', null, last ? when(last.pushed_at) : '')));
        }
        after = page.next_after;
        more.hidden = !after;
        const n = body.rows.length;
        note.textContent = n === 0 ? 'This token may read no project yet.' : n + (n === 1 ? ' project' : ' projects') + (after ? ' so far.' : '.');
      } catch (e) {
        if (v.alive()) v.section.append(failure(e));
      }
    }
    more.addEventListener('click', load);
    await load();
  }

  // One project: its branches, each linking to its history.
  async function projectView(project) {
    markNav('projects');
    const v = view(project,
      h('p', null, h('a', { href: matrixHref(project) }, 'Key matrix'), ' · ', h('a', { href: '#/' }, 'All projects')));
    const table = h('table', null,
      h('caption', { class: 'sr' }, 'Branches of ' + project),
      headRow('Branch', 'Version', 'Keys', 'Pushed by', 'When'));
    const body = h('tbody');
    table.append(body);
    const more = h('button', { type: 'button', hidden: true }, 'More branches');
    const note = h('p', { class: 'muted' }, 'Loading…');
    v.section.append(h('h2', null, 'Branches'), note, scrollRegion('Branches', table), more);
    let after = null;
    async function load() {
      try {
        const page = await api('GET', '/env/' + enc(project) + '?limit=100' + (after ? '&after=' + enc(after) : ''));
        if (!v.alive()) return;
        for (const b of page.branches) {
          body.append(h('tr', null,
            h('th', { scope: 'row' }, h('a', { href: historyHref(project, b.branch) }, b.branch)),
            h('td', { class: 'num' }, String(b.version)),
            h('td', { class: 'num' }, String(b.key_count)),
            h('td', null, b.pushed_by),
            h('td', null, when(b.pushed_at))));
        }
        after = page.next_after;
        more.hidden = !after;
        const n = body.rows.length;
        note.textContent = n === 0 ? 'No branch has an env yet.' : n + (n === 1 ? ' branch' : ' branches') + (after ? ' so far.' : '.');
      } catch (e) {
        if (v.alive()) v.section.append(failure(e));
      }
    }
    more.addEventListener('click', load);
    await load();
  }

  // ---- The matrix --------------------------------------------------------------------

  const CELLS = {
    p: { cls: 'c-p', word: 'present' },
    d: { cls: 'c-d', word: 'differs' },
    m: { cls: 'c-m', word: 'missing' },
    o: { cls: 'c-o', word: 'only here' },
    '.': { cls: 'c-a', word: 'neither' },
  };

  async function matrixView(project) {
    markNav('projects');
    const v = view(project + ': key matrix',
      h('p', null, h('a', { href: projectHref(project) }, 'Branches of ' + project), ' · ', h('a', { href: '#/' }, 'All projects')));
    const defaultKey = 'envsync.default.' + project;
    const data = { defaultBranch: null, keys: new Set(), columns: [], after: null };

    const keyFilter = h('input', { id: 'key-filter', type: 'search', autocomplete: 'off', spellcheck: 'false' });
    const branchFilter = h('input', { id: 'branch-filter', type: 'search', autocomplete: 'off', spellcheck: 'false' });
    const defaultSelect = h('select', { id: 'default-branch' });
    const diffOnly = h('input', { id: 'diff-only', type: 'checkbox' });
    const controls = h('div', { class: 'controls' },
      h('div', null, h('label', { for: 'key-filter' }, 'Filter keys'), keyFilter),
      h('div', null, h('label', { for: 'branch-filter' }, 'Filter branches'), branchFilter),
      h('div', null, h('label', { for: 'default-branch' }, 'Compare with'), defaultSelect),
      h('div', { class: 'check' }, diffOnly, h('label', { for: 'diff-only' }, 'Only keys that differ')));
    const legend = h('ul', { class: 'legend', 'aria-label': 'Legend' },
      h('li', null, h('span', { class: 'cell c-p', 'aria-hidden': 'true' }), ' present (the same value, or not comparable)'),
      h('li', null, h('span', { class: 'cell c-d', 'aria-hidden': 'true' }), ' differs: on both, another value'),
      h('li', null, h('span', { class: 'cell c-m', 'aria-hidden': 'true' }), ' missing: on the default branch, not here'),
      h('li', null, h('span', { class: 'cell c-o', 'aria-hidden': 'true' }), ' only here: not on the default branch'),
      h('li', null, h('span', { class: 'cell c-a', 'aria-hidden': 'true' }), ' on neither'));
    const summary = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Loading…');
    const holder = h('div', { class: 'scroll matrix-wrap', role: 'region', 'aria-label': 'Key matrix', tabindex: '0' });
    const more = h('button', { type: 'button', hidden: true }, 'Load more branches');
    v.section.append(controls, legend, summary, holder, more);

    function merge(page) {
      if (data.defaultBranch === null) data.defaultBranch = page.default_branch;
      for (const k of page.keys) data.keys.add(k);
      const known = new Set(data.columns.map((c) => c.branch));
      page.branches.forEach((b) => {
        if (known.has(b.branch)) return;
        const cells = new Map();
        for (let i = 0; i < page.keys.length; i++) {
          const c = b.cells[i];
          if (c !== '.') cells.set(page.keys[i], c);
        }
        data.columns.push({ ...b, cells });
      });
      data.after = page.next_after;
    }

    // The first rows (more than a screenful) are drawn at once and the rest on the next
    // frame, so a big matrix shows without waiting for its last row. (One frame for the
    // rest: each frame that adds rows lays the whole table out again.)
    const FIRST_ROWS = 60;
    let generation = 0;

    function keyRow(k, columns) {
      const row = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = k;
      row.append(th);
      for (const c of columns) {
        const cell = CELLS[c.cells.get(k) || '.'];
        const td = document.createElement('td');
        td.className = cell.cls;
        td.setAttribute('aria-label', cell.word);
        row.append(td);
      }
      return row;
    }

    function render() {
      const gen = ++generation;
      for (const name of ['envsync:matrix', 'envsync:matrix:script', 'envsync:matrix:complete']) performance.clearMeasures(name);
      performance.clearMarks('envsync:matrix:start');
      performance.mark('envsync:matrix:start');
      delete holder.dataset.complete;
      const kf = keyFilter.value.trim().toLowerCase();
      const bf = branchFilter.value.trim().toLowerCase();
      const columns = data.columns.filter((c, i) => i === 0 || !bf || c.branch.toLowerCase().includes(bf));
      let keys = [...data.keys].sort();
      if (kf) keys = keys.filter((k) => k.toLowerCase().includes(kf));
      if (diffOnly.checked) keys = keys.filter((k) => columns.some((c) => { const s = c.cells.get(k); return s === 'm' || s === 'o' || s === 'd'; }));

      const table = h('table', { id: 'matrix', class: 'matrix' },
        h('caption', null, 'Key names by branch, compared with ', h('strong', null, data.defaultBranch)));
      const head = h('thead');
      const corner = h('th', { scope: 'col', class: 'corner' }, 'Key');
      // Sized for the longest key up front, so that later rows do not move the columns.
      corner.style.minWidth = Math.min(64, keys.reduce((m, k) => Math.max(m, k.length), 3)) + 'ch';
      const names = h('tr', null, corner);
      const counts = h('tr', { class: 'counts' }, h('th', { scope: 'row' }, 'Missing'));
      for (const [i, c] of columns.entries()) {
        names.append(h('th', { scope: 'col', 'data-branch': c.branch },
          h('a', { href: historyHref(project, c.branch) }, c.branch),
          h('span', { class: 'ver' }, 'v' + c.version + (i === 0 ? ' · default' : ''))));
        counts.append(h('td', { class: c.missing ? 'num bad' : 'num' }, String(c.missing),
          c.only ? h('span', { class: 'only' }, ' +' + c.only + ' only') : null,
          c.differs ? h('span', { class: 'only' }, ' ' + c.differs + ' differ') : null));
      }
      head.append(names, counts);
      const body = h('tbody');
      for (const k of keys.slice(0, FIRST_ROWS)) body.append(keyRow(k, columns));
      table.append(head, body);
      holder.replaceChildren(table);
      performance.measure('envsync:matrix:script', 'envsync:matrix:start');
      summary.textContent = keys.length + ' of ' + data.keys.size + ' keys × ' + columns.length + ' of ' + data.columns.length + ' branches' + (data.after ? ' (more branches to load)' : '') + '.';
      more.hidden = !data.after;

      // After the next frame is painted: measure, then draw the other rows.
      const painted = (then) => window.requestAnimationFrame(() => window.setTimeout(() => {
        if (gen === generation && v.alive()) then();
      }, 0));
      const rest = () => {
        if (keys.length > FIRST_ROWS) {
          const chunk = document.createDocumentFragment();
          for (const k of keys.slice(FIRST_ROWS)) chunk.append(keyRow(k, columns));
          body.append(chunk);
        }
        painted(() => {
          performance.measure('envsync:matrix:complete', 'envsync:matrix:start');
          holder.dataset.complete = String(gen);
        });
      };
      painted(() => {
        performance.measure('envsync:matrix', 'envsync:matrix:start');
        rest();
      });
    }

    function fillDefaults() {
      defaultSelect.replaceChildren(...data.columns.map((c) => h('option', { value: c.branch, selected: c.branch === data.defaultBranch }, c.branch)));
    }

    async function load(reset) {
      try {
        const chosen = sessionStorage.getItem(defaultKey);
        let path = '/matrix/' + enc(project) + '?limit=50';
        if (!reset && data.after) path += '&after=' + enc(data.after);
        if (chosen) path += '&default=' + enc(chosen);
        performance.clearMarks('envsync:matrix:fetch-start');
        performance.clearMeasures('envsync:matrix:fetch');
        performance.mark('envsync:matrix:fetch-start');
        let page;
        try {
          page = await api('GET', path);
        } catch (e) {
          if (chosen && e.status === 404) {
            // The branch picked earlier is gone: fall back to the server's rule.
            sessionStorage.removeItem(defaultKey);
            return load(true);
          }
          throw e;
        }
        performance.measure('envsync:matrix:fetch', 'envsync:matrix:fetch-start');
        if (!v.alive()) return;
        if (reset) Object.assign(data, { defaultBranch: null, keys: new Set(), columns: [], after: null });
        merge(page);
        if (data.defaultBranch === null) {
          summary.textContent = 'No branch of ' + project + ' has an env yet.';
          controls.hidden = true;
          legend.hidden = true;
          return;
        }
        fillDefaults();
        render();
      } catch (e) {
        if (v.alive()) v.section.append(failure(e));
      }
    }

    let timer = 0;
    const later = () => { window.clearTimeout(timer); timer = window.setTimeout(render, 120); };
    for (const input of [keyFilter, branchFilter]) {
      input.addEventListener('input', later);
      input.addEventListener('change', later);
    }
    diffOnly.addEventListener('change', render);
    defaultSelect.addEventListener('change', () => {
      sessionStorage.setItem(defaultKey, defaultSelect.value);
      load(true);
    });
    more.addEventListener('click', () => load(false));
    await load(true);
  }

  // ---- Branch history ----------------------------------------------------------------

  function copyButton(text, what) {
    return h('button', {
      type: 'button', class: 'copy', 'aria-label': 'Copy ' + what,
      onclick: async (ev) => {
        const target = ev.currentTarget;
        try {
          await navigator.clipboard.writeText(text);
          announce('Copied: ' + text);
          target.textContent = 'Copied';
        } catch (_) {
          // No clipboard access: select the text so that Ctrl+C copies it.
          const code = target.previousElementSibling;
          if (code) window.getSelection().selectAllChildren(code);
          announce('Selected; press Ctrl+C to copy');
        }
        window.setTimeout(() => { target.textContent = 'Copy'; }, 1500);
      },
    }, 'Copy');
  }

  function keyList(names, cls) {
    if (!names.length) return h('span', { class: 'muted' }, '—');
    return h('ul', { class: 'keys ' + cls }, names.map((n) => h('li', null, n)));
  }

  async function historyView(project, branch) {
    markNav('projects');
    const v = view(branch + ': history',
      h('p', null, 'Branch of ', h('a', { href: projectHref(project) }, project), ' · ', h('a', { href: matrixHref(project) }, 'Key matrix')));
    const table = h('table', { id: 'history' },
      h('caption', { class: 'sr' }, 'Versions of ' + branch + ', newest first'),
      headRow('Version', 'Pushed by', 'When', 'Keys added', 'Keys removed', 'Commands'));
    const body = h('tbody');
    table.append(body);
    const note = h('p', { class: 'muted' }, 'Loading…');
    const more = h('button', { type: 'button', hidden: true }, 'Older versions');
    v.section.append(note, scrollRegion('Versions', table), more);
    const PAGE = 20;
    let before = null;
    const word = shellWord(branch);

    function command(text, what) {
      return h('div', { class: 'cmd' }, h('code', null, text), copyButton(text, what));
    }

    async function load() {
      try {
        const path = '/env/' + enc(project) + '/' + enc(branch) + '/versions?limit=' + (PAGE + 1) + (before !== null ? '&before=' + before : '');
        const page = await api('GET', path);
        if (!v.alive()) return;
        let rows = page.versions;
        let more_ = page.next_before !== null;
        let base = null;
        if (rows.length > 1 && (more_ || rows.length > PAGE)) {
          base = rows[rows.length - 1];
          rows = rows.slice(0, -1);
          more_ = true;
        }
        rows.forEach((r, i) => {
          const older = i + 1 < rows.length ? rows[i + 1] : base;
          let added = r.keys;
          let removed = [];
          if (older) {
            const was = new Set(older.keys);
            const now = new Set(r.keys);
            added = r.keys.filter((k) => !was.has(k));
            removed = older.keys.filter((k) => !now.has(k));
          }
          const pull = 'git envsync pull --branch ' + word + ' --version ' + r.version;
          const rollback = 'git envsync rollback --branch ' + word + ' ' + r.version;
          body.append(h('tr', { 'data-version': r.version },
            h('th', { scope: 'row', class: 'num' }, String(r.version)),
            h('td', null, r.pushed_by),
            h('td', null, when(r.pushed_at)),
            h('td', null, older || r.version === 1 ? keyList(added, 'added') : h('span', { class: 'muted' }, 'not compared')),
            h('td', null, keyList(removed, 'removed')),
            h('td', null, command(pull, 'the pull command for version ' + r.version),
              command(rollback, 'the rollback command to version ' + r.version))));
        });
        before = rows.length ? rows[rows.length - 1].version : null;
        more.hidden = !more_;
        const n = body.rows.length;
        note.textContent = n === 0 ? 'This branch has no version.' : n + (n === 1 ? ' version' : ' versions') + ' shown, newest first. The commands run in a clone of the repository.';
      } catch (e) {
        if (v.alive()) v.section.append(failure(e));
      }
    }
    more.addEventListener('click', load);
    await load();
  }

  // ---- Audit (owners) ----------------------------------------------------------------

  function field(id, label, input) {
    input.id = id;
    return h('div', null, h('label', { for: id }, label), input);
  }

  async function chainPanel() {
    const out = h('p', { id: 'chain-state', 'aria-live': 'polite' }, 'Checking…');
    const again = h('button', { type: 'button' }, 'Check again');
    const panel = h('section', { class: 'panel', 'aria-labelledby': 'chain-title' },
      h('h2', { id: 'chain-title' }, 'Chain'), out);
    if (!isAdmin()) {
      out.textContent = 'The chain spans every project: only an administrator token (an owner without projects) can check it.';
      return panel;
    }
    panel.append(again);
    async function check() {
      out.className = '';
      out.textContent = 'Checking…';
      try {
        const s = await api('GET', '/audit-chain');
        out.className = s.ok ? 'ok' : 'error';
        out.replaceChildren(s.ok ? 'Intact: ' : 'Broken: ', s.message);
        for (const head of s.heads || []) out.append(h('br'), 'Head ', h('code', null, head));
      } catch (e) {
        out.className = 'error';
        out.textContent = e.message;
      }
    }
    again.addEventListener('click', check);
    check();
    return panel;
  }

  async function auditView() {
    markNav('audit');
    if (!isOwner()) return ownersOnly('Audit', 'The audit log');
    const v = view('Audit');
    v.section.append(await chainPanel());
    if (!v.alive()) return;

    const project = h('select');
    const projects = isAdmin() ? [] : state.who.project_ids;
    if (isAdmin()) project.append(h('option', { value: '' }, 'Every project and token event'));
    const action = h('input', { type: 'text', list: 'actions', autocomplete: 'off' });
    const actor = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' });
    const branch = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' });
    const outcome = h('input', { type: 'text', list: 'outcomes', autocomplete: 'off' });
    const form = h('form', { class: 'controls', 'aria-label': 'Filters' },
      field('audit-project', 'Project', project),
      field('audit-action', 'Action', action),
      field('audit-actor', 'Actor', actor),
      field('audit-branch', 'Branch', branch),
      field('audit-outcome', 'Outcome', outcome),
      h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Apply'), h('button', { type: 'reset' }, 'Clear')),
      h('datalist', { id: 'actions' }, ['push', 'pull', 'keys', 'versions', 'branches', 'matrix', 'audit', 'audit.verify', 'token.mint', 'token.list', 'token.revoke'].map((a) => h('option', { value: a }))),
      h('datalist', { id: 'outcomes' }, ['ok', 'forbidden', 'conflict', 'not_found'].map((a) => h('option', { value: a }))));
    const table = h('table', { id: 'audit' },
      h('caption', { class: 'sr' }, 'Audit events, newest first'),
      headRow('When', 'Actor', 'Action', 'Project', 'Branch', 'Version', 'Outcome', 'Detail'));
    const body = h('tbody');
    table.append(body);
    const note = h('p', { class: 'muted', 'aria-live': 'polite' });
    const more = h('button', { type: 'button', hidden: true }, 'Older events');
    v.section.append(h('h2', null, 'Events'), form, note, scrollRegion('Audit events', table), more);

    if (!isAdmin()) {
      for (const p of projects) project.append(h('option', { value: p }, p));
    } else {
      try {
        const page = await api('GET', '/projects?limit=200');
        for (const p of page.projects) project.append(h('option', { value: p.project }, p.project));
      } catch (_) { /* the list of every event still works */ }
    }
    let before = null;
    async function load(reset) {
      if (reset) { before = null; body.replaceChildren(); }
      const q = new URLSearchParams({ limit: '100' });
      if (before !== null) q.set('before', before);
      for (const [k, input] of [['action', action], ['actor', actor], ['branch', branch], ['outcome', outcome]]) {
        if (input.value.trim()) q.set(k, input.value.trim());
      }
      const path = (project.value ? '/audit/' + enc(project.value) : '/audit') + '?' + q.toString();
      try {
        const page = await api('GET', path);
        if (!v.alive()) return;
        for (const e of page.events) {
          body.append(h('tr', null,
            h('td', null, when(e.at)),
            h('td', null, e.actor),
            h('td', null, e.action),
            h('td', null, e.project || ''),
            h('td', null, e.branch || ''),
            h('td', { class: 'num' }, e.version === null ? '' : String(e.version)),
            h('td', { class: e.outcome === 'ok' ? '' : 'bad' }, e.outcome),
            h('td', { class: 'detail' }, e.detail || '')));
        }
        before = page.next_before;
        more.hidden = before === null;
        const n = body.rows.length;
        note.textContent = (n === 0 ? 'No event matches' : n + (n === 1 ? ' event' : ' events')) + (before !== null ? ', read back to event ' + before + '.' : '.');
      } catch (e) {
        if (v.alive()) note.replaceChildren(failure(e));
      }
    }
    form.addEventListener('submit', (ev) => { ev.preventDefault(); load(true); });
    form.addEventListener('reset', () => window.setTimeout(() => load(true), 0));
    project.addEventListener('change', () => load(true));
    more.addEventListener('click', () => load(false));
    await load(true);
  }

  // ---- Tokens (owners) ---------------------------------------------------------------

  async function tokensView() {
    markNav('tokens');
    if (!isOwner()) return ownersOnly('Tokens', 'Token management');
    const v = view('Tokens');

    const email = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false' });
    const role = h('select', null, ['developer', 'readonly', 'owner'].map((r) => h('option', { value: r }, r)));
    const projects = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: isAdmin() ? 'empty: every project' : state.who.project_ids.join(' ') });
    const ttl = h('input', { type: 'text', value: '30d', autocomplete: 'off', 'aria-describedby': 'mint-ttl-note' });
    const minted = h('div', { id: 'minted', class: 'panel', hidden: true, tabindex: '-1' });
    const mintError = h('p', { class: 'error', role: 'alert' });
    const form = h('form', { class: 'controls', 'aria-labelledby': 'mint-title' },
      field('mint-email', 'Email', email),
      field('mint-role', 'Role', role),
      field('mint-projects', 'Projects (space or comma separated)', projects),
      field('mint-ttl', 'Lifetime', ttl),
      h('p', { id: 'mint-ttl-note', class: 'note' }, '3600, 90m, 12h, 30d or 2w; at most 400 days.'),
      h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Mint token')));
    const table = h('table', { id: 'tokens' },
      h('caption', { class: 'sr' }, 'Tokens, newest first'),
      headRow('Email', 'Role', 'Projects', 'Issued', 'Expires', 'State', 'Action'));
    const body = h('tbody');
    table.append(body);
    const note = h('p', { class: 'muted' }, 'Loading…');
    v.section.append(
      h('section', { 'aria-labelledby': 'mint-title' }, h('h2', { id: 'mint-title' }, 'New token'), form, mintError, minted),
      h('section', { 'aria-labelledby': 'list-title' }, h('h2', { id: 'list-title' }, 'Tokens'), note, scrollRegion('Tokens', table)));

    function revokeCell(t) {
      const cell = h('td');
      if (t.revoked) return cell;
      const start = h('button', { type: 'button', class: 'danger', 'aria-label': 'Revoke the token of ' + t.email + ' (' + t.jti + ')' }, 'Revoke');
      start.addEventListener('click', () => {
        const confirm = h('button', { type: 'button', class: 'danger', 'data-confirm': t.jti }, 'Confirm revoke');
        const cancel = h('button', { type: 'button' }, 'Cancel');
        cancel.addEventListener('click', () => { cell.replaceChildren(start); start.focus(); });
        confirm.addEventListener('click', async () => {
          try {
            await api('DELETE', '/tokens/' + enc(t.jti));
            announce('Revoked the token of ' + t.email);
            if (v.alive()) list();
          } catch (e) {
            cell.replaceChildren(failure(e));
          }
        });
        cell.replaceChildren(confirm, ' ', cancel);
        confirm.focus();
      });
      cell.append(start);
      return cell;
    }

    async function list() {
      try {
        const tokens = await api('GET', '/tokens');
        if (!v.alive()) return;
        const now = Date.now();
        body.replaceChildren(...tokens.map((t) => {
          const expired = new Date(t.expires_at).getTime() < now;
          const stateText = t.revoked ? 'revoked' : expired ? 'expired' : 'active';
          return h('tr', { 'data-jti': t.jti },
            h('th', { scope: 'row' }, t.email),
            h('td', null, t.role),
            h('td', null, t.project_ids.length ? t.project_ids.join(', ') : h('span', { class: 'muted' }, 'every project')),
            h('td', null, when(t.issued_at)),
            h('td', null, when(t.expires_at)),
            h('td', { class: stateText === 'active' ? 'ok' : 'bad' }, stateText),
            revokeCell(t));
        }));
        note.textContent = tokens.length + (tokens.length === 1 ? ' token' : ' tokens') + ' you manage. The server keeps what a token says, never the token itself.';
      } catch (e) {
        if (v.alive()) note.replaceChildren(failure(e));
      }
    }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      mintError.textContent = '';
      const ids = projects.value.split(/[\s,]+/).filter(Boolean);
      const request = { email: email.value.trim(), role: role.value, project_ids: ids };
      if (ttl.value.trim()) request.ttl = /^\d+$/.test(ttl.value.trim()) ? Number(ttl.value.trim()) : ttl.value.trim();
      try {
        const answer = await api('POST', '/tokens', request);
        if (!v.alive()) return;
        const value = h('input', { id: 'minted-token', type: 'text', readonly: true, spellcheck: 'false', 'aria-describedby': 'minted-note' });
        value.value = answer.token;
        minted.replaceChildren(
          h('h3', null, 'New token for ' + request.email),
          h('p', { id: 'minted-note' }, 'Shown once: copy it now. The server keeps only its id (', h('code', null, answer.jti), '); it expires ', when(answer.expires_at), '.'),
          h('div', { class: 'cmd' }, value, h('button', {
            type: 'button', class: 'copy', 'aria-label': 'Copy the new token',
            onclick: async (e2) => {
              const b = e2.currentTarget;
              try { await navigator.clipboard.writeText(value.value); b.textContent = 'Copied'; announce('Token copied'); } catch (_) { value.select(); announce('Selected; press Ctrl+C to copy'); }
            },
          }, 'Copy')),
          h('button', { type: 'button', onclick: () => { minted.replaceChildren(); minted.hidden = true; } }, 'Done: forget it'));
        minted.hidden = false;
        minted.focus();
        form.reset();
        ttl.value = '30d';
        list();
      } catch (e) {
        mintError.textContent = e.message;
      }
    });
    await list();
  }

  function notFoundView() {
    const v = view('Not found');
    v.section.append(h('p', null, 'No such page. ', h('a', { href: '#/' }, 'Projects')));
  }

  // ---- Router ------------------------------------------------------------------------

  function route() {
    if (!state.token) return;
    const hash = location.hash;
    // In-page anchors (the skip link) are not routes.
    if (hash && !hash.startsWith('#/')) return;
    let parts;
    try {
      parts = hash.slice(2).split('/').filter((s) => s !== '').map(decodeURIComponent);
    } catch (_) {
      return notFoundView();
    }
    if (parts.length === 0) return projectsView();
    if (parts[0] === 'p' && parts.length === 2) return projectView(parts[1]);
    if (parts[0] === 'p' && parts.length === 3 && parts[2] === 'matrix') return matrixView(parts[1]);
    if (parts[0] === 'p' && parts.length === 4 && parts[2] === 'b') return historyView(parts[1], parts[3]);
    if (parts.length === 1 && parts[0] === 'audit') return auditView();
    if (parts.length === 1 && parts[0] === 'tokens') return tokensView();
    return notFoundView();
  }

  // ---- Start -------------------------------------------------------------------------

  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('token');
    const token = input.value.trim().replace(/^Bearer\s+/i, '');
    if (!token) return;
    $('signin-error').textContent = '';
    try {
      await signIn(token);
      input.value = '';
    } catch (e) {
      $('signin-error').textContent = e instanceof ApiError
        ? 'The server refused this token: ' + e.message
        : 'The server could not be reached.';
    }
  });
  $('signout').addEventListener('click', () => { signOut(''); announce('Signed out'); });
  window.addEventListener('hashchange', route);

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    signIn(saved).catch(() => signOut('Sign in again: the saved token was refused.'));
  } else {
    signOut('');
  }
})();
