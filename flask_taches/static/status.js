/*
 * flask-taches status.js: keeps task badges and progress bars live.
 *
 * Plain JavaScript, no framework, no build step. Load it with
 * {{ taches_script() }}, which emits
 *   <meta name="taches-csrf" content="...">
 *   <script src=".../static/status.js" data-batch-url=".../status"
 *           data-poll-ms="1000" data-idle-ms="10000" data-idle-after-ms="20000"
 *           defer></script>
 *
 * Forms: form.tache-action[data-action] inside a watched element is sent with
 * fetch (CSRF token from its csrf_token field or <meta name="taches-csrf">, as
 * a field and an X-CSRFToken header), then the page is refreshed at once;
 * data-confirm on it (or on the dashboard's form.taches-cancel-all) is asked
 * with confirm() first.
 *
 * Elements it watches (also ones added to the page later):
 *   <span class="tache" data-id="42"></span>         one task, by id
 *   <span class="tache" data-signature="export"></span>  latest task of a signature
 *   data-status='["TO_RUN","RUNNING"]'                shown only in those statuses
 *
 *   <span class="tache" data-id="42" data-result="1">  + the _result.html partial
 *   <tr class="tache" data-id="42" data-fragment="row">  a dashboard row (row_html)
 *   <article data-tache-page="42">                   a task page: its fields, result
 *                                                     and log ([data-tache-part],
 *                                                     new log entries appended)
 *   <tbody data-taches-rows="query" data-after="120">  new dashboard rows on top
 *   <time datetime="...">                             shown in UTC or local time
 *                                                     ([data-times] buttons choose)
 *
 * Each tick sends ONE request for the whole page (POST batch-url, JSON
 * {"ids": [...], "signatures": [...], "pages", "rows", "newer"}, split in
 * chunks of data-batch-max, default 200) and replaces each element's content
 * with the server-rendered fragments, so a live element looks exactly like
 * the first render.
 * Adaptive: every data-poll-ms while something changed in the last
 * data-idle-after-ms, then twice as long each tick up to data-idle-ms; at
 * once again on a change, an action, Taches.refresh() or the tab coming back.
 * It polls only while a watched task is unfinished (or a signature has no
 * task yet, or a dashboard waits for new rows), pauses while the tab is
 * hidden, and backs off exponentially on errors.
 *
 * Events, dispatched on the .tache element and bubbling:
 *   taches:update  detail = the task JSON; first data received, then every change
 *   taches:done    detail = the task JSON; the task has just finished
 *   taches:gone    detail = {id}; the task no longer exists (or is not yours)
 *   taches:action  detail = {action, response}; an action button succeeded
 *   taches:error   detail = {action, status, error}; an action button failed
 *
 * API for pages that change themselves:
 *   Taches.refresh()  ask now for every watched element (returns a Promise);
 *                     call it after adding a task to a shown signature
 *   Taches.watch(el)  start watching el (or the .tache elements inside it)
 *   Taches.polling    true while a poll is scheduled or under way
 */
(() => {
  "use strict";

  if (window.Taches) {
    return; // loaded twice: the first copy already watches the page
  }

  const SELECTOR = ".tache[data-id], .tache[data-signature]";
  const ACTION_SELECTOR = "form.tache-action[data-action]";
  // Forms that ask confirm(data-confirm) first: the fragments' actions, and the
  // dashboard's "cancel all" (an ordinary POST once confirmed).
  const CONFIRM_SELECTOR =
    "form.tache-action[data-confirm], form.taches-cancel-all[data-confirm], form.taches-bulk-action[data-confirm]";
  const PAGE_SELECTOR = "[data-tache-page]";
  const ROWS_SELECTOR = "tbody[data-taches-rows]";
  const TIMES_KEY = "taches.times"; // localStorage: "local" or "utc"
  const FINISHED = new Set(["COMPLETED", "FAILED", "INTERRUPTED", "CANCELLED"]);
  const DEFAULT_POLL_MS = 1000; // milliseconds between ticks while live
  const DEFAULT_IDLE_MS = 10000; // the slowest interval, once nothing changes
  const DEFAULT_IDLE_AFTER_MS = 20000; // unchanged this long: start backing off
  const DEFAULT_BATCH_MAX = 200; // ids + signatures in one request (TACHES_BATCH_MAX)
  const MAX_BACKOFF_MS = 60000; // milliseconds: longest wait after repeated errors
  const JITTER = 0.1; // +/- 10 % on back-off delays, so many tabs do not retry in step

  const script = document.currentScript || document.querySelector("script[data-batch-url]");
  const config = readConfig(script);

  /** Per-element state: what the script knows about the task it shows. */
  const states = new WeakMap();

  let timer = null; // pending setTimeout id
  let inflight = false; // a tick is waiting for the server
  let again = null; // null, or {all: bool}: tick again as soon as the current one ends
  let paused = false; // stopped because the tab is hidden
  let errors = 0; // consecutive failed ticks, for the back-off
  let waiters = []; // resolve functions of refresh() promises
  let lastChange = Date.now(); // when a tick last brought something new
  let idleDelay = 0; // the current backed-off interval (0: not backing off)

  function readConfig(tag) {
    const data = tag ? tag.dataset : {};
    let batchUrl = data.batchUrl || "";
    if (!batchUrl && tag && tag.src) {
      // <prefix>/static/status.js -> <prefix>/status
      batchUrl = tag.src.replace(/\/static\/status\.js(\?.*)?$/, "/status");
    }
    return {
      batchUrl,
      pollMs: positiveNumber(data.pollMs, DEFAULT_POLL_MS),
      idleMs: positiveNumber(data.idleMs, DEFAULT_IDLE_MS),
      idleAfterMs: positiveNumber(data.idleAfterMs, DEFAULT_IDLE_AFTER_MS),
      batchMax: Math.floor(positiveNumber(data.batchMax, DEFAULT_BATCH_MAX)),
    };
  }

  function positiveNumber(text, fallback) {
    const value = Number(text);
    return Number.isFinite(value) && value > 0 ? value : fallback;
  }

  // -- elements and their state ----------------------------------------------------

  /** "id:42" or "sig:export"; null for an element the server could not accept. */
  function keyOf(el) {
    const id = (el.dataset.id || "").trim();
    if (id) {
      return /^\d+$/.test(id) ? `id:${id}` : null;
    }
    const signature = el.dataset.signature || "";
    return signature ? `sig:${signature}` : null;
  }

  function parseFilter(el) {
    const raw = el.dataset.status;
    if (raw === undefined || raw.trim() === "") {
      return null;
    }
    try {
      const value = JSON.parse(raw);
      if (Array.isArray(value)) {
        return value.map(String);
      }
    } catch (_) {
      // not JSON: also accept the plain "TO_RUN,RUNNING" form
    }
    return raw
      .split(",")
      .map((s) => s.replace(/["'[\]\s]/g, ""))
      .filter(Boolean);
  }

  /** State of an element, created from its server-rendered content on first sight. */
  function stateOf(el) {
    const key = keyOf(el);
    let state = states.get(el);
    if (state && state.key === key) {
      return state;
    }
    state = { key, taskId: null, status: null, finished: null, gone: key === null, seen: false };
    if (key === null) {
      warnOnce(el, "flask-taches: ignored: data-id must be digits, or data-signature set", el);
    }
    const fragment = el.querySelector("[data-tache-id][data-status]");
    if (fragment) {
      state.taskId = Number(fragment.dataset.tacheId);
      state.status = fragment.dataset.status;
      state.finished =
        fragment.dataset.finished !== undefined
          ? fragment.dataset.finished === "1"
          : FINISHED.has(state.status);
    }
    states.set(el, state);
    applyFilter(el, state);
    return state;
  }

  const warned = new WeakSet();
  function warnOnce(el, ...args) {
    if (!warned.has(el)) {
      warned.add(el);
      console.warn(...args);
    }
  }

  /** Unknown, unfinished, or a signature still waiting for a finished task. */
  function needsPoll(state) {
    return !state.gone && state.finished !== true;
  }

  function applyFilter(el, state) {
    const filter = parseFilter(el);
    if (filter !== null) {
      setHidden(el, !(state.status && filter.includes(state.status)));
    }
  }

  /** The hidden attribute, made to win over a stylesheet's `.tache { display: ... }`. */
  function setHidden(el, hide) {
    el.hidden = hide;
    if (hide) {
      el.style.setProperty("display", "none", "important");
    } else if (el.style.getPropertyValue("display") === "none") {
      el.style.removeProperty("display");
    }
  }

  function watchedElements() {
    return Array.from(document.querySelectorAll(SELECTOR));
  }

  // -- polling -----------------------------------------------------------------------

  function schedule(delay) {
    if (timer !== null) {
      clearTimeout(timer);
    }
    timer = setTimeout(() => {
      timer = null;
      tick(false);
    }, delay);
  }

  function backoffDelay() {
    const base = Math.min(config.pollMs * 2 ** errors, MAX_BACKOFF_MS);
    return base * (1 - JITTER + Math.random() * 2 * JITTER);
  }

  async function tick(all) {
    if (inflight) {
      again = { all: all || (again !== null && again.all) };
      return;
    }
    if (document.hidden) {
      paused = true; // visibilitychange resumes
      again = all ? { all: true } : again;
      return;
    }
    const elements = watchedElements();
    const asked = elements.filter((el) => {
      const state = stateOf(el);
      return state.key !== null && (all ? !state.gone : needsPoll(state));
    });
    const rows = liveRows();
    if (asked.length === 0 && rows === null) {
      settle();
      return;
    }
    inflight = true;
    try {
      const keys = uniqueKeys(asked);
      let first = true;
      for (const chunk of keys.length ? chunks(keys, config.batchMax) : [[]]) {
        const reply = await fetchBatch(chunk, asked, first ? rows : null);
        apply(reply, asked, new Set(chunk));
        applyPages(reply.pages || {});
        if (reply.newer && rows !== null) {
          applyNewer(rows, reply.newer);
        }
        first = false;
      }
      errors = 0;
    } catch (error) {
      errors += 1;
      console.warn(`flask-taches: status request failed (${errors} in a row)`, error);
    } finally {
      inflight = false;
    }
    if (again !== null) {
      const next = again;
      again = null;
      tick(next.all);
      return;
    }
    settle();
  }

  /** After a tick: poll again if something is unfinished, else stop. */
  function settle() {
    const pending = watchedElements().some((el) => needsPoll(stateOf(el))) || liveRows() !== null;
    if (pending || errors > 0) {
      schedule(errors > 0 ? backoffDelay() : nextDelay());
    }
    const done = waiters;
    waiters = [];
    done.forEach((resolve) => resolve());
  }

  /** Fast while things change; once idle, twice as long each tick up to idleMs. */
  function nextDelay() {
    if (Date.now() - lastChange < config.idleAfterMs) {
      idleDelay = 0;
      return config.pollMs;
    }
    idleDelay = Math.min(config.idleMs, Math.max(config.pollMs, idleDelay) * 2);
    return idleDelay;
  }

  function uniqueKeys(elements) {
    return Array.from(new Set(elements.map((el) => stateOf(el).key)));
  }

  function* chunks(items, size) {
    for (let start = 0; start < items.length; start += size) {
      yield items.slice(start, start + size);
    }
  }

  async function fetchBatch(keys, elements, rows) {
    const body = { ids: [], signatures: [] };
    for (const key of keys) {
      if (key.startsWith("id:")) {
        body.ids.push(Number(key.slice(3)));
      } else {
        body.signatures.push(key.slice(4));
      }
    }
    const inChunk = new Set(keys);
    const rowIds = elements
      .filter((el) => el.dataset.fragment === "row" && inChunk.has(stateOf(el).key))
      .map((el) => Number(el.dataset.id));
    if (rowIds.length) {
      body.rows = Array.from(new Set(rowIds));
    }
    const pages = livePages().filter((page) => inChunk.has(`id:${page.dataset.tachePage}`));
    if (pages.length) {
      body.pages = pages.map((page) => ({ id: Number(page.dataset.tachePage), logs: logsShown(page) }));
    }
    if (rows !== null) {
      body.newer = { after: Number(rows.dataset.after) || 0, query: rows.dataset.tachesRows || "" };
    }
    const response = await fetch(config.batchUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-Requested-With": "fetch",
      },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      throw new Error(`${response.status} ${response.statusText} from ${config.batchUrl}`);
    }
    return response.json();
  }

  /** Put the batch reply into the elements whose keys were in this chunk. */
  function apply(reply, elements, keys) {
    const byId = new Map();
    const bySignature = new Map();
    for (const tache of reply.taches || []) {
      byId.set(`id:${tache.id}`, tache);
      if (tache.signature) {
        const key = `sig:${tache.signature}`;
        const known = bySignature.get(key);
        if (!known || known.id < tache.id) {
          bySignature.set(key, tache); // the latest task of the signature
        }
      }
    }
    for (const el of elements) {
      const state = stateOf(el);
      if (!keys.has(state.key)) {
        continue;
      }
      const tache = byId.get(state.key) || bySignature.get(state.key);
      if (tache) {
        update(el, state, tache);
      } else if (state.key.startsWith("id:")) {
        gone(el, state);
      } else {
        // no task with this signature yet: keep asking, show nothing
        state.finished = false;
        state.status = null;
        applyFilter(el, state);
      }
    }
  }

  function update(el, state, tache) {
    const newTask = state.taskId !== null && state.taskId !== tache.id;
    const becameFinished = tache.finished && (state.finished === false || newTask);
    const html = fragmentOf(el, tache);
    const changed = !sameMarkup(el, html);
    if (changed) {
      replace(el, html);
      markChanged();
    }
    const first = !state.seen;
    const statusChanged = state.status !== tache.status || newTask;
    state.seen = true;
    state.taskId = tache.id;
    state.status = tache.status;
    state.finished = Boolean(tache.finished);
    applyFilter(el, state);
    if (first || changed || statusChanged) {
      emit(el, "taches:update", tache);
    }
    if (becameFinished) {
      emit(el, "taches:done", tache);
    }
  }

  /** What the server rendered for this element: a row's cells, or the status (+ result). */
  function fragmentOf(el, tache) {
    if (el.dataset.fragment === "row" && tache.row_html !== undefined) {
      return tache.row_html;
    }
    const status = tache.status_html || "";
    return el.dataset.result ? status + (tache.result_html || "") : status;
  }

  function gone(el, state) {
    const wasGone = state.gone;
    state.gone = true;
    state.status = null;
    el.innerHTML = "";
    applyFilter(el, state);
    if (!wasGone) {
      markChanged();
      const id = Number(state.key.slice(3));
      let target = el;
      if (el.dataset.fragment === "row" && el.parentNode) {
        target = el.parentNode; // a deleted task's row leaves the table; its tbody says so
        el.remove();
      }
      for (const page of livePages()) {
        if (Number(page.dataset.tachePage) === id) {
          showGone(page);
        }
      }
      emit(target, "taches:gone", { id });
    }
  }

  // -- a task page: its fields, result and log ---------------------------------------

  function livePages() {
    return Array.from(document.querySelectorAll(PAGE_SELECTOR)).filter((page) => !page.dataset.gone);
  }

  function logsShown(page) {
    const list = page.querySelector("[data-tache-logs]");
    return list ? Number(list.dataset.tacheLogs) || 0 : 0;
  }

  function applyPages(pages) {
    for (const page of livePages()) {
      const parts = pages[page.dataset.tachePage];
      if (parts) {
        applyPage(page, parts);
      }
    }
  }

  function applyPage(page, parts) {
    for (const name of ["fields", "result"]) {
      const part = page.querySelector(`[data-tache-part="${name}"]`);
      const html = parts[`${name}_html`];
      if (part && html !== undefined && !sameOuter(part, html)) {
        part.outerHTML = html;
        localizeTimes(page.querySelector(`[data-tache-part="${name}"]`) || page);
        markChanged();
      }
    }
    const list = page.querySelector("[data-tache-logs]");
    if (!list) {
      return;
    }
    if (parts.logs_reset) {
      list.innerHTML = "";
    }
    if (parts.logs_html) {
      // Appended, never re-rendered: the reader's scroll position and open details stay.
      const follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
      list.insertAdjacentHTML("beforeend", parts.logs_html);
      localizeTimes(list);
      markChanged();
      if (follow) {
        window.scrollTo(0, document.body.scrollHeight);
      }
    }
    list.dataset.tacheLogs = String(parts.logs);
    const empty = page.querySelector(".tache-logs--empty");
    if (empty) {
      empty.hidden = parts.logs > 0;
    }
  }

  function showGone(page) {
    page.dataset.gone = "1";
    const note = page.querySelector(".taches-gone");
    if (note) {
      note.hidden = false;
    }
    for (const part of page.querySelectorAll("[data-tache-part], [data-tache-logs], .taches-section")) {
      part.classList.add("taches-gone__stale");
    }
  }

  // -- the dashboard's new rows ------------------------------------------------------

  function liveRows() {
    return document.querySelector(ROWS_SELECTOR);
  }

  function applyNewer(tbody, newer) {
    if (newer.html) {
      tbody.insertAdjacentHTML("afterbegin", newer.html); // the observer watches the new rows
      localizeTimes(tbody);
      markChanged();
    }
    tbody.dataset.after = String(newer.after);
  }

  // -- times in UTC or local -------------------------------------------------------

  function timesMode() {
    try {
      return window.localStorage.getItem(TIMES_KEY) === "local" ? "local" : "utc";
    } catch (_) {
      return "utc"; // storage refused (privacy mode): the server's UTC
    }
  }

  const pad = (n) => String(n).padStart(2, "0");

  /** <time datetime> as rendered (UTC), or in the browser's time zone. */
  function localizeTimes(root) {
    const local = timesMode() === "local";
    for (const el of root.querySelectorAll("time[datetime]")) {
      if (el.dataset.utc === undefined) {
        el.dataset.utc = el.textContent;
      }
      const at = new Date(el.getAttribute("datetime"));
      if (!local || Number.isNaN(at.getTime())) {
        el.textContent = el.dataset.utc;
        continue;
      }
      const offset = -at.getTimezoneOffset();
      const zone = `UTC${offset >= 0 ? "+" : "-"}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
      el.textContent =
        `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ` +
        `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())} ${zone}`;
    }
    for (const button of document.querySelectorAll("button[data-times]")) {
      button.setAttribute("aria-pressed", String(button.dataset.times === timesMode()));
    }
  }

  function onTimesClick(event) {
    const button = event.target instanceof Element ? event.target.closest("button[data-times]") : null;
    if (!button) {
      return;
    }
    try {
      window.localStorage.setItem(TIMES_KEY, button.dataset.times);
    } catch (_) {
      // not kept: this page still switches
    }
    localizeTimes(document);
  }

  // A click is lost if its button is replaced between pointerdown and pointerup,
  // so an element being pressed gets its new content just after the click.
  let pressed = null;
  const deferred = new WeakMap();

  function replace(el, html) {
    if (el === pressed) {
      deferred.set(el, html);
    } else {
      el.innerHTML = html;
      localizeTimes(el);
    }
  }

  function onPointerDown(event) {
    pressed = event.target instanceof Element ? event.target.closest(SELECTOR) : null;
  }

  function onPointerUp() {
    const el = pressed;
    pressed = null;
    if (el && deferred.has(el)) {
      setTimeout(() => {
        if (deferred.has(el)) {
          el.innerHTML = deferred.get(el);
          localizeTimes(el);
          deferred.delete(el);
        }
      }, 0);
    }
  }

  /** Compare as the browser serialises both, so formatting differences do not count. */
  const scratch = document.createElement("template");
  function sameMarkup(el, html) {
    scratch.innerHTML = html;
    localizeTimes(scratch.content);
    return comparable(scratch.innerHTML) === comparable(el.innerHTML);
  }

  function sameOuter(el, html) {
    scratch.innerHTML = html;
    localizeTimes(scratch.content);
    return comparable(scratch.innerHTML) === comparable(el.outerHTML);
  }

  // Each answer signs a fresh CSRF token into the action forms: not a change.
  const TOKEN_VALUE = /(name="csrf_token"[^>]*?value=")[^"]*"/g;
  function comparable(markup) {
    return markup.trim().replace(TOKEN_VALUE, '$1"');
  }

  /** Something new reached the page (or the reader acted): poll fast again. */
  function markChanged() {
    lastChange = Date.now();
    idleDelay = 0;
  }

  function emit(el, name, detail) {
    el.dispatchEvent(new CustomEvent(name, { bubbles: true, detail }));
  }

  // -- actions (cancel, restart, delete buttons in the fragments) ---------------------

  function csrfToken(form) {
    const input = form.querySelector('input[name="csrf_token"]');
    if (input && input.value) {
      return input.value;
    }
    const meta = document.querySelector('meta[name="taches-csrf"]');
    return meta ? meta.content : "";
  }

  function onSubmit(event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) {
      return;
    }
    const message = form.matches(CONFIRM_SELECTOR) ? form.dataset.confirm : "";
    if (message && !window.confirm(message)) {
      event.preventDefault();
      return;
    }
    const owner = form.matches(ACTION_SELECTOR) ? form.closest(SELECTOR) : null;
    if (!owner) {
      return; // not in a watched element: an ordinary POST, the server redirects back
    }
    event.preventDefault();
    sendAction(form, owner, event.submitter || null);
  }

  async function sendAction(form, owner, submitter) {
    const action = form.dataset.action;
    const token = csrfToken(form);
    const body = submitter ? new FormData(form, submitter) : new FormData(form);
    if (token && !body.has("csrf_token")) {
      body.set("csrf_token", token);
    }
    const headers = { Accept: "application/json", "X-Requested-With": "fetch" };
    if (token) {
      headers["X-CSRFToken"] = token;
    }
    // getAttribute: a field named "action" would shadow form.action
    const url = new URL(form.getAttribute("action") || window.location.href, window.location.href);
    const buttons = Array.from(form.querySelectorAll("button, input[type=submit]"));
    buttons.forEach((button) => {
      button.disabled = true;
    });
    form.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers,
        body,
      });
      const data = await response.json().catch(() => null);
      if (response.ok) {
        emit(owner, "taches:action", { action, response: data });
      } else {
        const error = (data && data.error) || `${response.status} ${response.statusText}`;
        showError(form, error);
        emit(owner, "taches:error", { action, status: response.status, error });
      }
    } catch (error) {
      showError(form, String(error));
      emit(owner, "taches:error", { action, status: 0, error: String(error) });
    } finally {
      form.removeAttribute("aria-busy");
      buttons.forEach((button) => {
        button.disabled = false;
      });
    }
    // Ask now: a cancelled task is finished, a restarted one is unfinished again
    // (so polling resumes), a deleted one is gone.
    await refresh();
  }

  function showError(form, message) {
    let box = form.querySelector(".tache-action-error");
    if (!box) {
      box = document.createElement("span");
      box.className = "tache-action-error";
      box.setAttribute("role", "alert");
      form.append(box);
    }
    box.textContent = message; // text, never HTML: the message comes from the server
  }

  // -- public API and start-up -------------------------------------------------------

  /** Ask now for every watched element; resolves once that request is answered. */
  function refresh() {
    markChanged();
    return new Promise((resolve) => {
      waiters.push(resolve);
      if (timer !== null) {
        clearTimeout(timer);
        timer = null;
      }
      tick(true);
    });
  }

  /** Start watching ``el`` (a .tache element, or a container of some). */
  function watch(el) {
    const found = el.matches && el.matches(SELECTOR) ? [el] : [];
    if (el.querySelectorAll) {
      found.push(...el.querySelectorAll(SELECTOR));
    }
    let unknown = false;
    for (const item of found) {
      states.delete(item);
      unknown = needsPoll(stateOf(item)) || unknown;
    }
    if (unknown && !inflight) {
      schedule(0);
    } else if (unknown) {
      again = again || { all: false };
    }
  }

  function onMutations(records) {
    for (const record of records) {
      if (record.type === "attributes") {
        const el = record.target;
        if (el.matches(SELECTOR)) {
          watch(el);
        }
        continue;
      }
      for (const node of record.addedNodes) {
        if (node.nodeType === Node.ELEMENT_NODE && (node.matches(SELECTOR) || node.querySelector(SELECTOR))) {
          watch(node);
        }
      }
    }
  }

  function onVisibilityChange() {
    if (!document.hidden && paused) {
      paused = false;
      markChanged();
      const next = again;
      again = null;
      tick(next !== null && next.all);
    }
  }

  function start() {
    if (!config.batchUrl) {
      console.warn("flask-taches: no data-batch-url on the status.js <script> tag; not polling");
      return;
    }
    document.addEventListener("submit", onSubmit);
    document.addEventListener("click", onTimesClick);
    localizeTimes(document);
    document.addEventListener("visibilitychange", onVisibilityChange);
    document.addEventListener("pointerdown", onPointerDown, true);
    document.addEventListener("pointerup", onPointerUp, true);
    document.addEventListener("pointercancel", onPointerUp, true);
    new MutationObserver(onMutations).observe(document.documentElement, {
      childList: true,
      subtree: true,
      attributes: true,
      attributeFilter: ["data-id", "data-signature", "data-status"],
    });
    const states0 = watchedElements().map(stateOf);
    // Elements rendered by the server are fresh: ask at once only for the empty ones.
    if (states0.some((state) => !state.gone && state.finished === null)) {
      schedule(0);
    } else if (states0.some(needsPoll) || liveRows() !== null) {
      schedule(config.pollMs);
    }
  }

  window.Taches = {
    refresh,
    watch,
    get polling() {
      return timer !== null || inflight;
    },
    config,
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
