// lazaret console: a single-page app over lazaret's JSON API on the same
// origin. Routes live in the URL hash (#/, #/?verdict=infected,
// #/?sha256=..., #/jobs/ID, #/engines).
//
// Everything the API returns goes into the page as text (textContent,
// setAttribute on fixed attribute names), never parsed as HTML: file names,
// signatures and error messages are attacker-controlled.
//
// The API token is kept in sessionStorage and sent as a bearer token; it
// never appears in a URL.
'use strict';

(function () {
  const TOKEN_KEY = 'lazaret.token';
  const PAGE_SIZE = 50;
  const VERDICTS = ['clean', 'infected', 'error', 'skipped'];
  const STATUSES = ['queued', 'running', 'done'];
  const SHA256_RE = /^[0-9a-f]{64}$/;
  const POLL_MS = 1500;

  // ---- DOM helpers ------------------------------------------------------

  const $ = (sel) => document.querySelector(sel);

  // el builds an element. props: class, text, on<event>, or any attribute
  // (set with setAttribute, so values are never parsed as markup).
  // Children are nodes or strings; strings become text nodes.
  function el(tag, props, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') n.className = v;
      else if (k === 'text') n.textContent = String(v);
      else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      n.append(c instanceof Node ? c : String(c));
    }
    return n;
  }

  function clear(n) {
    while (n.firstChild) n.removeChild(n.firstChild);
    return n;
  }

  // ---- formatting -------------------------------------------------------

  function formatSize(n) {
    if (typeof n !== 'number' || !isFinite(n) || n < 0) return '';
    if (n < 1024) return n + ' B';
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let v = n;
    let i = -1;
    do {
      v /= 1024;
      i++;
    } while (v >= 1024 && i < units.length - 1);
    return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ' + units[i];
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

  function timeEl(s) {
    if (!s) return '';
    const d = new Date(s);
    if (isNaN(d.getTime())) return String(s);
    return el('time', { datetime: d.toISOString(), title: String(s) }, dateFormat.format(d));
  }

  // label is what a job's badge says: its verdict when done, else its status.
  function jobLabel(job) {
    if (job.status && job.status !== 'done') return STATUSES.includes(job.status) ? job.status : 'unknown';
    return VERDICTS.includes(job.verdict) ? job.verdict : 'unknown';
  }

  // badge shows a verdict or status as text on a colour; the class comes
  // from a fixed list, never from the API's string itself.
  function badge(label) {
    const known = VERDICTS.includes(label) || STATUSES.includes(label) || label === 'healthy' || label === 'unhealthy';
    const cls = known ? label : 'unknown';
    return el('span', { class: 'badge badge-' + cls }, known ? label : String(label || 'unknown'));
  }

  function jobHref(id) {
    return '#/jobs/' + encodeURIComponent(id);
  }

  function signatureOf(job) {
    const fs = Array.isArray(job.findings) ? job.findings : [];
    if (fs.length > 0) {
      const more = fs.length > 1 ? el('span', { class: 'muted' }, ' +' + (fs.length - 1) + ' more') : null;
      return [el('span', { class: 'sig' }, fs[0].signature || ''), more];
    }
    if (job.reason) return el('span', { class: 'muted' }, job.reason);
    return '';
  }

  // ---- status line ------------------------------------------------------

  function say(msg, kind) {
    const s = $('#status');
    clear(s);
    if (msg) s.append(el('p', { class: kind === 'error' ? 'alert' : 'note' }, msg));
  }

  // ---- API --------------------------------------------------------------

  class APIError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  function setToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // Storage disabled: the token lasts until the page is left.
    }
    $('#forget-token').hidden = !t;
  }

  // api calls the API. A 401 shows the token form and throws. With
  // opts.acceptJob, an error status whose body is a job (a 503 for an
  // engine that could not answer) still returns the job. With opts.raw,
  // a successful answer is returned as the Response, its body unread.
  async function api(path, opts) {
    opts = opts || {};
    const headers = { Accept: opts.raw ? '*/*' : 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = 'Bearer ' + token;
    let res;
    try {
      res = await fetch(path, {
        method: opts.method || 'GET',
        body: opts.body,
        headers: headers,
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
      });
    } catch (e) {
      throw new APIError(0, 'network', 'The server did not answer (' + e.message + ').');
    }
    if (opts.raw && res.ok) return res;
    let body = null;
    if ((res.headers.get('Content-Type') || '').startsWith('application/json')) {
      try {
        body = await res.json();
      } catch (e) {
        body = null;
      }
    }
    if (res.status === 401) {
      showAuth(token ? 'The token was not accepted. Enter a valid API token.' : 'This server needs an API token.');
      if (token) setToken('');
      throw new APIError(401, 'unauthorized', 'An API token is required.');
    }
    if (res.ok) return body;
    if (opts.acceptJob && body && typeof body === 'object' && body.id && body.status) return body;
    const msg = body && typeof body.error === 'string' ? body.error : res.status + ' ' + res.statusText;
    throw new APIError(res.status, (body && body.code) || 'http_' + res.status, msg);
  }

  // ---- auth -------------------------------------------------------------

  let authShown = false;

  function showAuth(message) {
    $('#auth-message').textContent = message;
    say('');
    clearTimeout(pollTimer);
    for (const v of document.querySelectorAll('main > section')) v.hidden = v.id !== 'auth';
    current($('#nav-jobs'), false);
    current($('#nav-engines'), false);
    if (!authShown) {
      authShown = true;
      $('#auth-token').value = '';
      $('#auth-token').focus();
    }
  }

  function onAuthSubmit(ev) {
    ev.preventDefault();
    const t = $('#auth-token').value.trim();
    if (!t) return;
    $('#auth-token').value = '';
    authShown = false;
    $('#auth').hidden = true;
    setToken(t);
    route();
  }

  function onForgetToken() {
    setToken('');
    route();
  }

  // ---- views ------------------------------------------------------------

  function showView(id) {
    for (const v of document.querySelectorAll('main > section')) v.hidden = v.id !== id;
    current($('#nav-jobs'), id === 'view-jobs' || id === 'view-job');
    current($('#nav-engines'), id === 'view-engines');
  }

  function current(link, on) {
    if (on) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }

  function parseHash() {
    const h = location.hash.replace(/^#/, '') || '/';
    const q = h.indexOf('?');
    const path = q < 0 ? h : h.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
    const m = path.match(/^\/jobs\/([^/?]+)$/);
    if (m) {
      let id = m[1];
      try {
        id = decodeURIComponent(id);
      } catch (e) {
        // keep it as written
      }
      return { view: 'job', id: id };
    }
    if (path === '/engines') return { view: 'engines' };
    const verdict = params.get('verdict') || '';
    const sha256 = (params.get('sha256') || '').toLowerCase();
    return {
      view: 'jobs',
      verdict: VERDICTS.includes(verdict) ? verdict : '',
      sha256: SHA256_RE.test(sha256) ? sha256 : '',
    };
  }

  function listHash(verdict, sha256) {
    const p = new URLSearchParams();
    if (verdict) p.set('verdict', verdict);
    if (sha256) p.set('sha256', sha256);
    const s = p.toString();
    return '#/' + (s ? '?' + s : '');
  }

  // routeSeq invalidates answers for a route the user has left.
  let routeSeq = 0;
  let pollTimer = 0;

  function route() {
    routeSeq++;
    clearTimeout(pollTimer);
    authShown = false;
    say('');
    const r = parseHash();
    if (r.view === 'job') return showJob(r.id, routeSeq, true);
    if (r.view === 'engines') return showEngines(routeSeq);
    return showJobs(r, routeSeq);
  }

  // ---- jobs list --------------------------------------------------------

  // list is the jobs list's state; gen drops pages of a list since reset,
  // pages counts the pages shown.
  const list = { verdict: '', sha256: '', cursor: '', gen: 0, pages: 0 };

  function showJobs(r, seq) {
    showView('view-jobs');
    document.title = 'Jobs — lazaret';
    list.verdict = r.verdict;
    list.sha256 = r.sha256;
    $('#verdict-filter').value = r.verdict;
    $('#search-banner').hidden = !r.sha256;
    $('#search-banner-sum').textContent = r.sha256;
    if (r.sha256 && $('#search-sha256').value.trim().toLowerCase() !== r.sha256) $('#search-sha256').value = r.sha256;
    $('#jobs-heading').textContent = r.sha256 ? 'Jobs for this content' : 'Recent jobs';
    return loadJobs(true, seq);
  }

  async function loadJobs(reset, seq) {
    const p = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (list.verdict) p.set('verdict', list.verdict);
    if (list.sha256) p.set('sha256', list.sha256);
    if (!reset && list.cursor) p.set('cursor', list.cursor);
    if (reset) list.gen++;
    const gen = list.gen;
    const tbody = $('#jobs tbody');
    const more = $('#load-more');
    more.disabled = true;
    $('#jobs').setAttribute('aria-busy', 'true');
    try {
      const page = await api('/v1/jobs?' + p.toString());
      if (seq !== routeSeq || gen !== list.gen) return;
      if (reset) {
        clear(tbody);
        list.pages = 0;
      }
      list.pages++;
      const jobs = page && Array.isArray(page.jobs) ? page.jobs : [];
      for (const job of jobs) tbody.append(jobRow(job));
      // While the first page has unfinished jobs, refresh it now and then;
      // once the user has loaded more, leave the list alone.
      clearTimeout(pollTimer);
      if (list.pages === 1 && jobs.some((j) => j.status !== 'done')) {
        pollTimer = setTimeout(() => seq === routeSeq && list.pages === 1 && loadJobs(true, seq), 3 * POLL_MS);
      }
      list.cursor = (page && page.next_cursor) || '';
      more.hidden = !list.cursor;
      const empty = tbody.rows.length === 0;
      $('#jobs-empty').hidden = !empty;
      $('#jobs-empty').textContent = list.sha256
        ? 'No job has scanned this content.'
        : list.verdict
          ? 'No ' + list.verdict + ' jobs.'
          : 'No jobs yet. Scan a file to start.';
    } catch (e) {
      if (seq === routeSeq && e.status !== 401) say('Could not load jobs: ' + e.message, 'error');
    } finally {
      // An older load that ends must not mark a newer one's list ready.
      if (gen === list.gen) {
        more.disabled = false;
        $('#jobs').removeAttribute('aria-busy');
      }
    }
  }

  function jobRow(job) {
    const label = jobLabel(job);
    return el(
      'tr',
      { 'data-id': job.id, 'data-verdict': label },
      el('td', null, badge(label)),
      el('td', { class: 'name' }, el('a', { href: jobHref(job.id) }, job.name || '(unnamed)')),
      el('td', { class: 'num', title: job.size + ' bytes' }, formatSize(job.size)),
      el('td', null, signatureOf(job)),
      el('td', { class: 'nowrap' }, timeEl(job.created_at)),
    );
  }

  function onFilterChange() {
    location.hash = listHash($('#verdict-filter').value, list.sha256);
  }

  function onSearch(ev) {
    ev.preventDefault();
    const input = $('#search-sha256');
    const err = $('#search-error');
    const v = input.value.trim().toLowerCase();
    if (v === '') {
      err.hidden = true;
      input.removeAttribute('aria-invalid');
      location.hash = listHash(list.verdict, '');
      return;
    }
    if (!SHA256_RE.test(v)) {
      err.textContent = 'A SHA-256 is exactly 64 hexadecimal digits (0-9, a-f); this has ' + v.length + ' characters.';
      err.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    err.hidden = true;
    input.removeAttribute('aria-invalid');
    const target = listHash('', v);
    if (location.hash === target) route();
    else location.hash = target;
  }

  // ---- upload -----------------------------------------------------------

  async function onUpload(ev) {
    ev.preventDefault();
    const input = $('#upload-file');
    const out = $('#upload-result');
    const button = $('#upload-submit');
    clear(out);
    if (!input.files || input.files.length === 0) {
      out.append(el('p', { class: 'alert' }, 'Choose a file to scan.'));
      input.focus();
      return;
    }
    const fd = new FormData();
    const names = [];
    for (const f of input.files) {
      fd.append('file', f, f.name);
      names.push(f.name);
    }
    button.disabled = true;
    out.setAttribute('aria-busy', 'true');
    out.append(el('p', { class: 'muted' }, 'Scanning ' + names.join(', ') + '…'));
    try {
      const body = await api('/v1/scan', { method: 'POST', body: fd, acceptJob: true });
      const jobs = Array.isArray(body) ? body : [body];
      clear(out);
      const ul = el('ul', { class: 'results' });
      for (const job of jobs) {
        const label = jobLabel(job);
        ul.append(
          el(
            'li',
            { 'data-id': job.id, 'data-verdict': label },
            badge(label),
            ' ',
            el('a', { href: jobHref(job.id) }, job.name || '(unnamed)'),
            ' ',
            signatureOf(job),
          ),
        );
      }
      out.append(ul);
      input.value = '';
      if (parseHash().view === 'jobs') loadJobs(true, routeSeq);
    } catch (e) {
      clear(out);
      if (e.status === 401) out.append(el('p', { class: 'alert' }, 'Enter a token, then scan again.'));
      else out.append(el('p', { class: 'alert' }, 'Scan failed: ' + e.message));
    } finally {
      button.disabled = false;
      out.removeAttribute('aria-busy');
    }
  }

  // ---- job detail -------------------------------------------------------

  const JOB_FIELDS = [
    'id', 'status', 'verdict', 'reason', 'name', 'size', 'sha256', 'source', 'findings', 'engines',
    'cached', 'actions', 'error', 'attempts', 'created_at', 'finished_at',
  ];

  async function showJob(id, seq, first) {
    showView('view-job');
    const box = $('#job-detail');
    if (first) {
      clear(box);
      box.append(el('p', { class: 'muted' }, 'Loading…'));
    }
    let job;
    try {
      job = await api('/v1/jobs/' + encodeURIComponent(id));
    } catch (e) {
      if (seq !== routeSeq || e.status === 401) return;
      clear(box);
      box.append(el('h1', { id: 'job-title', tabindex: '-1' }, 'Job not available'), el('p', { class: 'alert' }, e.message));
      return;
    }
    if (seq !== routeSeq) return;
    clear(box);
    box.append(jobDetail(job));
    document.title = (job.name || job.id) + ' — lazaret';
    if (first) $('#job-title').focus();
    if (job.status !== 'done') pollTimer = setTimeout(() => seq === routeSeq && showJob(id, seq, false), POLL_MS);
  }

  function dlRow(term, value) {
    return [el('dt', null, term), el('dd', null, value === '' || value === undefined || value === null ? el('span', { class: 'muted' }, '—') : value)];
  }

  function jobDetail(job) {
    const label = jobLabel(job);
    const frag = document.createDocumentFragment();
    frag.append(
      el('h1', { id: 'job-title', class: 'job-title', tabindex: '-1' }, badge(label), ' ', el('span', { class: 'name' }, job.name || '(unnamed)')),
    );

    let duration = '';
    if (job.finished_at && job.created_at) {
      const ms = new Date(job.finished_at) - new Date(job.created_at);
      if (isFinite(ms) && ms >= 0) duration = ms + ' ms';
    }
    const summary = el(
      'dl',
      { class: 'fields', id: 'job-fields' },
      dlRow('ID', el('code', { class: 'mono' }, job.id)),
      dlRow('Status', job.status),
      dlRow('Verdict', job.verdict ? badge(job.verdict) : ''),
      dlRow('Reason', job.reason),
      dlRow('Name', job.name ? el('span', { class: 'name' }, job.name) : ''),
      dlRow('Size', typeof job.size === 'number' ? formatSize(job.size) + ' (' + job.size + ' bytes)' : ''),
      dlRow(
        'SHA-256',
        job.sha256
          ? [el('code', { class: 'mono hash' }, job.sha256), ' ', el('a', { href: listHash('', SHA256_RE.test(job.sha256) ? job.sha256 : '') }, 'all jobs with this content')]
          : '',
      ),
      dlRow('Cached', job.cached ? 'yes — verdict reused for the same content and engine versions' : 'no'),
      dlRow('Actions', Array.isArray(job.actions) && job.actions.length ? job.actions.join(', ') : ''),
      dlRow('Error', job.error ? el('span', { class: 'error-text' }, job.error) : ''),
      dlRow('Attempts', job.attempts === undefined ? '' : String(job.attempts)),
      dlRow('Created', timeEl(job.created_at)),
      dlRow('Finished', timeEl(job.finished_at)),
      dlRow('Duration', duration),
    );
    // Fields this console does not know yet are still shown.
    for (const [k, v] of Object.entries(job)) {
      if (JOB_FIELDS.includes(k)) continue;
      summary.append(...dlRow(k, typeof v === 'string' ? v : JSON.stringify(v)));
    }
    frag.append(el('section', { class: 'card', 'aria-labelledby': 'job-summary-h' }, el('h2', { id: 'job-summary-h' }, 'Summary'), summary));

    const source = el('dl', { class: 'fields', id: 'job-source' });
    for (const [k, v] of Object.entries(job.source || {})) {
      if (v === '' || v === null || v === undefined) continue;
      source.append(...dlRow(k, typeof v === 'string' ? v : JSON.stringify(v)));
    }
    frag.append(el('section', { class: 'card', 'aria-labelledby': 'job-source-h' }, el('h2', { id: 'job-source-h' }, 'Source'), source));

    const findings = Array.isArray(job.findings) ? job.findings : [];
    frag.append(
      el(
        'section',
        { class: 'card', 'aria-labelledby': 'job-findings-h' },
        el('h2', { id: 'job-findings-h' }, 'Findings'),
        findings.length === 0
          ? el('p', { class: 'muted', id: 'job-findings' }, 'No findings.')
          : table(
            'job-findings',
            ['Engine', 'Signature', 'Path'],
            findings.map((f) => [f.engine, el('span', { class: 'sig' }, f.signature || ''), f.path ? el('span', { class: 'mono' }, f.path) : '']),
          ),
      ),
    );

    const engines = Array.isArray(job.engines) ? job.engines : [];
    // The Report column shows only when an engine (an analyzer) wrote one.
    const reports = engines.some(hasReport);
    frag.append(
      el(
        'section',
        { class: 'card', 'aria-labelledby': 'job-engines-h' },
        el('h2', { id: 'job-engines-h' }, 'Engines'),
        engines.length === 0
          ? el('p', { class: 'muted', id: 'job-engines' }, 'No engine ran.')
          : table(
            'job-engines',
            ['Name', 'Version', 'Verdict', 'Reason', 'Detail', 'Duration'].concat(reports ? ['Report'] : []),
            engines.map((e) => [
              e.name,
              el('span', { class: 'mono' }, e.version || ''),
              badge(e.verdict),
              e.reason || '',
              e.detail || '',
              typeof e.duration_ms === 'number' ? e.duration_ms + ' ms' : '',
            ].concat(reports ? [hasReport(e) ? reportLink(job.id, e) : ''] : [])),
            [5],
          ),
      ),
    );

    frag.append(
      el(
        'details',
        { class: 'card raw' },
        el('summary', null, 'Raw JSON'),
        el('pre', { class: 'mono' }, JSON.stringify(job, null, 2)),
      ),
    );
    return frag;
  }

  // ---- reports ----------------------------------------------------------

  function hasReport(e) {
    return Boolean(e && e.report && typeof e.report === 'object' && typeof e.name === 'string');
  }

  function reportHref(jobID, engine) {
    return '/v1/jobs/' + encodeURIComponent(jobID) + '/report?engine=' + encodeURIComponent(engine);
  }

  // reportLink links an engine run's report, with its size and type.
  // The link is a real one (it can be copied, and works as it is on a
  // server without tokens), but a click downloads the report through the
  // API with the token, which never goes into a URL.
  function reportLink(jobID, e) {
    const r = e.report;
    const about = [typeof r.size === 'number' ? formatSize(r.size) : '', typeof r.content_type === 'string' ? r.content_type : '']
      .filter(Boolean)
      .join(', ');
    return [
      el('a', { class: 'report-link', href: reportHref(jobID, e.name), download: true, 'data-engine': e.name, onclick: onReportClick }, 'Download report'),
      about ? el('span', { class: 'muted report-about' }, ' (' + about + ')') : null,
    ];
  }

  // reportFilename is the name the server gave the report
  // (Content-Disposition), in characters every file system takes.
  function reportFilename(res) {
    const m = /filename="?([^";]+)"?/i.exec(res.headers.get('Content-Disposition') || '');
    const name = m ? m[1].replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '') : '';
    return name || 'report';
  }

  async function onReportClick(ev) {
    ev.preventDefault();
    const a = ev.currentTarget;
    if (a.getAttribute('aria-busy') === 'true') return;
    a.setAttribute('aria-busy', 'true');
    say('');
    try {
      const res = await api(a.getAttribute('href'), { raw: true });
      // An analyzer's report about untrusted content: typed as bytes,
      // so that even a browser that ignored download would not render
      // it (a blob: URL has the console's origin).
      const data = await res.blob();
      const url = URL.createObjectURL(data.slice(0, data.size, 'application/octet-stream'));
      const save = el('a', { href: url, download: reportFilename(res), hidden: true });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60 * 1000);
    } catch (e) {
      if (e.status !== 401) say('Could not download the report: ' + e.message, 'error');
    } finally {
      a.removeAttribute('aria-busy');
    }
  }

  // table builds a table; cells are nodes or strings. numeric lists the
  // columns to align right.
  function table(id, headings, rows, numeric) {
    numeric = numeric || [];
    return el(
      'div',
      { class: 'table-wrap' },
      el(
        'table',
        { id: id },
        el('thead', null, el('tr', null, headings.map((h, i) => el('th', { scope: 'col', class: numeric.includes(i) ? 'num' : null }, h)))),
        el('tbody', null, rows.map((r) => el('tr', null, r.map((c, i) => el('td', { class: numeric.includes(i) ? 'num' : null }, c))))),
      ),
    );
  }

  // ---- engines ----------------------------------------------------------

  async function showEngines(seq) {
    showView('view-engines');
    document.title = 'Engines — lazaret';
    $('#engines-title').focus();
    const tbody = $('#engines tbody');
    try {
      const engines = await api('/v1/engines');
      if (seq !== routeSeq) return;
      clear(tbody);
      for (const e of Array.isArray(engines) ? engines : []) {
        tbody.append(
          el(
            'tr',
            { 'data-name': e.name },
            el('td', null, e.name),
            el('td', null, e.type || ''),
            el('td', { class: 'mono' }, e.version || ''),
            el('td', null, badge(e.healthy ? 'healthy' : 'unhealthy')),
            el('td', { class: 'error-text' }, e.error || ''),
          ),
        );
      }
    } catch (e) {
      if (seq === routeSeq && e.status !== 401) say('Could not load engines: ' + e.message, 'error');
    }
  }

  // ---- start ------------------------------------------------------------

  function start() {
    $('#auth-form').addEventListener('submit', onAuthSubmit);
    $('#forget-token').addEventListener('click', onForgetToken);
    $('#upload-form').addEventListener('submit', onUpload);
    $('#search-form').addEventListener('submit', onSearch);
    $('#verdict-filter').addEventListener('change', onFilterChange);
    $('#refresh').addEventListener('click', () => loadJobs(true, routeSeq));
    $('#load-more').addEventListener('click', () => loadJobs(false, routeSeq));
    window.addEventListener('hashchange', route);
    setToken(getToken());
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
