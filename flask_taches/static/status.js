/*
 * flask-taches status.js: keeps task badges and progress bars live.
 *
 * Plain JavaScript, no framework, no build step. Load it with
 * {{ taches_script() }}, which emits
 *   <meta name="taches-csrf" content="...">
 *   <script src=".../static/status.js" data-batch-url=".../status"
 *           data-poll-ms="5000" defer></script>
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
 * Each tick sends ONE request for the whole page (POST batch-url, JSON
 * {"ids": [...], "signatures": [...]}, split in chunks of data-batch-max,
 * default 200) and replaces each element's content with the server-rendered
 * status_html, so a live element looks exactly like the first render.
 * It polls only while a watched task is unfinished (or a signature has no
 * finished task yet), pauses while the tab is hidden, and backs off
 * exponentially on errors.
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
  const CONFIRM_SELECTOR = "form.tache-action[data-confirm], form.taches-cancel-all[data-confirm]";
  const FINISHED = new Set(["COMPLETED", "FAILED", "INTERRUPTED", "CANCELLED"]);
  const DEFAULT_POLL_MS = 5000; // milliseconds, the bundle's interval
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
    if (asked.length === 0) {
      settle();
      return;
    }
    inflight = true;
    try {
      for (const chunk of chunks(uniqueKeys(asked), config.batchMax)) {
        const reply = await fetchBatch(chunk);
        apply(reply, asked, new Set(chunk));
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
    const pending = watchedElements().some((el) => needsPoll(stateOf(el)));
    if (pending || errors > 0) {
      schedule(errors > 0 ? backoffDelay() : config.pollMs);
    }
    const done = waiters;
    waiters = [];
    done.forEach((resolve) => resolve());
  }

  function uniqueKeys(elements) {
    return Array.from(new Set(elements.map((el) => stateOf(el).key)));
  }

  function* chunks(items, size) {
    for (let start = 0; start < items.length; start += size) {
      yield items.slice(start, start + size);
    }
  }

  async function fetchBatch(keys) {
    const body = { ids: [], signatures: [] };
    for (const key of keys) {
      if (key.startsWith("id:")) {
        body.ids.push(Number(key.slice(3)));
      } else {
        body.signatures.push(key.slice(4));
      }
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
    const html = tache.status_html || "";
    const changed = !sameMarkup(el, html);
    if (changed) {
      replace(el, html);
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

  function gone(el, state) {
    const wasGone = state.gone;
    state.gone = true;
    state.status = null;
    el.innerHTML = "";
    applyFilter(el, state);
    if (!wasGone) {
      emit(el, "taches:gone", { id: Number(state.key.slice(3)) });
    }
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
          deferred.delete(el);
        }
      }, 0);
    }
  }

  /** Compare as the browser serialises both, so formatting differences do not count. */
  const scratch = document.createElement("template");
  function sameMarkup(el, html) {
    scratch.innerHTML = html;
    return scratch.innerHTML.trim() === el.innerHTML.trim();
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
    } else if (states0.some(needsPoll)) {
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
