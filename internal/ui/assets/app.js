// lfsm console: a page over the JSON API of docs/ui.md, nothing else.
"use strict";

// Errors of the page, kept for whoever looks (the browser test prints them).
window.lfsmErrors = [];
window.addEventListener("error", (e) => window.lfsmErrors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.lfsmErrors.push(String(e.reason)));

const TOKEN = document.querySelector('meta[name="lfsm-token"]').content;
const STATUSES = ["running", "waiting", "failed", "done", "stopped"];
let machines = null; // GET /api/machines, loaded once
let streams = []; // EventSources of the current view
let timers = []; // timeouts of the current view
let lastNote = null; // what the last operation answered, shown on its execution's page

// el builds an element: attributes in attrs, children strings or nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, opts) {
  const r = await fetch(path, opts);
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-LFSM-Token": TOKEN },
    body: JSON.stringify(body || {}),
  });
}

async function loadMachines() {
  if (!machines) machines = (await api("/api/machines")).machines;
  return machines;
}

function pill(status, text) {
  return el("span", { class: "pill " + status }, text === undefined ? status : text);
}

function ago(t) {
  if (!t) return "";
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return new Date(t).toISOString().slice(0, 16).replace("T", " ");
}

function duration(ns) {
  if (ns < 1e6) return (ns / 1e3).toFixed(0) + " µs";
  if (ns < 1e9) return (ns / 1e6).toFixed(1) + " ms";
  return (ns / 1e9).toFixed(2) + " s";
}

function cleanup() {
  streams.forEach((s) => s.close());
  timers.forEach((t) => clearTimeout(t));
  streams = [];
  timers = [];
}

function setView(...nodes) {
  const v = document.getElementById("view");
  v.replaceChildren(...nodes);
  return v;
}

function flash(text, err) {
  return el("div", { class: "flash" + (err ? " err" : ""), id: "flash" }, text);
}

// confirmDialog asks in the page (not window.confirm) and resolves to a yes.
function confirmDialog(text) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "yes"), { once: true });
    d.showModal();
  });
}

// ---- Machines page

async function machinesPage() {
  const ms = await loadMachines();
  if (ms.length === 0) {
    setView(el("h1", {}, "Machines"), el("p", { class: "muted" }, "No spec was loaded: lfsm ui -f FILE draws its machines."));
    return;
  }
  const legend = el("div", { class: "legend" }, "Executions per state:", STATUSES.map((s) => pill(s)));
  const cards = ms.map((m) => {
    const diagram = el("div", { class: "diagram", id: "diagram-" + m.name }, el("p", { class: "muted" }, "Drawing…"));
    const total = el("span", { class: "muted total", id: "total-" + m.name });
    const card = el("section", { class: "card" },
      el("h2", {}, m.name, " ", total),
      el("div", { class: "machine" }, diagram, el("pre", { class: "listing" }, m.listing)));
    drawMachine(m, diagram, total);
    return card;
  });
  setView(el("h1", {}, "Machines"), legend, ...cards);
}

async function drawMachine(m, diagram, total) {
  try {
    const r = await fetch(m.graph);
    if (!r.ok) throw new Error((await r.json()).error);
    diagram.innerHTML = await r.text();
  } catch (e) {
    diagram.replaceChildren(flash("cannot draw " + m.name + ": " + e.message, true));
    return;
  }
  const svg = diagram.querySelector("svg");
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  const nodes = {};
  for (const g of svg.querySelectorAll("g.node")) {
    const t = g.querySelector("title");
    if (t) nodes[t.textContent] = g;
  }
  const es = new EventSource("/api/counts/stream?machine=" + encodeURIComponent(m.name));
  streams.push(es);
  es.addEventListener("counts", (ev) => {
    const c = JSON.parse(ev.data);
    total.textContent = c.total + " executions" + (c.truncated ? " (counted the newest " + c.total + ")" : "");
    drawCounts(m, svg, nodes, c.counts);
  });
}

const SVGNS = "http://www.w3.org/2000/svg";

// drawCounts puts one badge per non-zero status above each state's node,
// linked to the executions in that state and status.
function drawCounts(m, svg, nodes, rows) {
  svg.querySelectorAll(".count-badge").forEach((b) => b.remove());
  const byState = {};
  for (const r of rows) (byState[r.state] = byState[r.state] || {})[r.status] = r.n;
  const places = m.states.concat([{ name: "pseudo_init", node: m.start_node }]);
  for (const st of places) {
    const g = nodes[st.node];
    const counts = byState[st.name];
    if (!g || !counts) continue;
    const box = g.getBBox();
    const badge = document.createElementNS(SVGNS, "g");
    badge.setAttribute("class", "count-badge");
    badge.setAttribute("data-state", st.name);
    let x = box.x + box.width;
    const y = box.y - 7;
    for (const s of STATUSES.slice().reverse()) {
      const n = counts[s];
      if (!n) continue;
      const label = String(n);
      const w = 10 + 6.5 * label.length;
      x -= w + 2;
      const a = document.createElementNS(SVGNS, "a");
      a.setAttribute("href", "#/executions?machine=" + encodeURIComponent(m.name) + "&state=" + encodeURIComponent(st.name) + "&status=" + s);
      a.setAttribute("data-status", s);
      const rect = document.createElementNS(SVGNS, "rect");
      rect.setAttribute("class", s);
      rect.setAttribute("x", x); rect.setAttribute("y", y - 7);
      rect.setAttribute("width", w); rect.setAttribute("height", 14);
      rect.setAttribute("rx", 7);
      const t = document.createElementNS(SVGNS, "text");
      t.setAttribute("x", x + w / 2); t.setAttribute("y", y + 3.5);
      t.setAttribute("text-anchor", "middle");
      t.textContent = label;
      const title = document.createElementNS(SVGNS, "title");
      title.textContent = n + " " + s + " in " + st.name;
      a.append(rect, t, title);
      badge.append(a);
    }
    g.parentNode.append(badge);
  }
  // Badges may stick out above the drawing: make room.
  const vb = svg.viewBox.baseVal;
  const all = svg.getBBox();
  if (all.y < vb.y) {
    svg.setAttribute("viewBox", [vb.x, all.y - 2, vb.width, vb.height + (vb.y - all.y) + 2].join(" "));
  }
}

// ---- Executions page

async function executionsPage(params) {
  const ms = await loadMachines();
  const f = {
    machine: params.get("machine") || "", state: params.get("state") || "",
    status: params.get("status") || "", correlation_id: params.get("correlation_id") || "",
  };
  const cursor = params.get("cursor") || "";
  const machineSel = el("select", { name: "machine", id: "f-machine" }, el("option", { value: "" }, "any"),
    ms.map((m) => el("option", { value: m.name, selected: m.name === f.machine }, m.name)));
  const stateNames = new Set();
  for (const m of ms) if (!f.machine || m.name === f.machine) m.states.forEach((s) => stateNames.add(s.name));
  if (f.state) stateNames.add(f.state);
  const stateSel = el("select", { name: "state", id: "f-state" }, el("option", { value: "" }, "any"),
    [...stateNames].sort().map((s) => el("option", { value: s, selected: s === f.state }, s)));
  const statusSel = el("select", { name: "status", id: "f-status" }, el("option", { value: "" }, "any"),
    STATUSES.map((s) => el("option", { value: s, selected: s === f.status }, s)));
  const idInput = el("input", { name: "correlation_id", id: "f-id", placeholder: "correlation id", value: f.correlation_id, size: 34 });
  const form = el("form", { class: "filters", id: "filters", onsubmit: (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    location.hash = "#/executions?" + q;
  } },
  el("label", {}, "Machine", machineSel), el("label", {}, "State", stateSel),
  el("label", {}, "Status", statusSel), el("label", {}, "Correlation id", idInput),
  el("button", { type: "submit", class: "primary", id: "f-apply" }, "Filter"));
  machineSel.addEventListener("change", () => { stateSel.value = ""; form.requestSubmit(); });
  stateSel.addEventListener("change", () => form.requestSubmit());
  statusSel.addEventListener("change", () => form.requestSubmit());

  const statusCounts = el("div", { class: "statuscounts", id: "status-counts" });
  const tbody = el("tbody", { id: "executions" });
  const table = el("table", {}, el("thead", {}, el("tr", {},
    ["Correlation id", "Machine", "Status", "State", "Step", "Retries", "Updated"].map((h) => el("th", {}, h)))), tbody);
  const pager = el("div", { class: "pager" });
  setView(el("h1", {}, "Executions"), form, statusCounts, table, pager);

  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  if (cursor) q.set("cursor", cursor);
  const [page, counts] = await Promise.all([
    api("/api/executions?" + q),
    api("/api/counts?machine=" + encodeURIComponent(f.machine)).catch(() => null),
  ]);
  if (counts) {
    statusCounts.append(...STATUSES.map((s) => {
      const link = new URLSearchParams(q); link.delete("cursor"); link.set("status", s);
      return el("a", { href: "#/executions?" + link }, pill(s, s + " " + counts.by_status[s]));
    }));
  }
  if (page.executions.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No executions match.")));
  }
  for (const x of page.executions) {
    tbody.append(el("tr", { "data-id": x.correlation_id },
      el("td", { class: "id" }, el("a", { href: "#/execution/" + encodeURIComponent(x.correlation_id) }, x.correlation_id)),
      el("td", {}, x.machine), el("td", { class: "status" }, pill(x.status)), el("td", { class: "state" }, x.state),
      el("td", {}, x.step), el("td", {}, x.retries), el("td", { title: x.updated_at }, ago(x.updated_at))));
  }
  performance.mark("lfsm-executions"); // the table is drawn (the first-paint benchmark)
  if (cursor) pager.append(el("button", { onclick: () => history.back() }, "← Newer"));
  if (page.next) {
    const n = new URLSearchParams(q); n.set("cursor", page.next);
    pager.append(el("a", { href: "#/executions?" + n, id: "older" }, el("button", {}, "Older →")));
  }
}

// ---- Execution page

async function executionPage(id) {
  const res = await api("/api/executions/" + encodeURIComponent(id));
  const x = res.execution;
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "Machine"), el("dd", {}, x.machine),
    el("dt", {}, "Status"), el("dd", { id: "x-status" }, pill(x.status)),
    el("dt", {}, "State"), el("dd", { id: "x-state" }, x.state),
    el("dt", {}, "Step"), el("dd", { id: "x-step" }, x.step),
    el("dt", {}, "Retries"), el("dd", {}, x.retries),
    el("dt", {}, "Lease"), el("dd", {}, "step " + x.lease.step + ", " + (x.lease.held ? "held until " + x.lease.expires : "open")),
    el("dt", {}, "Fence"), el("dd", {}, x.lease.fence),
    x.last_error ? [el("dt", {}, "Error"), el("dd", { class: "error" }, x.last_error)] : [],
    el("dt", {}, "Started"), el("dd", { title: x.created_at }, ago(x.created_at)),
    el("dt", {}, "Updated"), el("dd", { title: x.updated_at }, ago(x.updated_at)));

  const ctxPre = el("pre", { class: "context", id: "x-context" }, res.context_text + (res.context_truncated ? "\n…" : ""));
  const ctxCard = el("section", { class: "card" }, el("h2", {}, "Context ", el("span", { class: "muted" }, res.context_bytes + " bytes")), ctxPre);
  if (res.context_truncated) {
    ctxCard.append(el("p", {}, "Truncated. ",
      el("button", { id: "x-context-all", onclick: async () => {
        const all = await api("/api/executions/" + encodeURIComponent(id) + "/context");
        ctxPre.textContent = JSON.stringify(all, null, 2);
      } }, "Show all"), " ",
      el("a", { href: "/api/executions/" + encodeURIComponent(id) + "/context", target: "_blank" }, "raw JSON")));
  }

  const ops = el("div", { class: "ops", id: "x-ops" });
  const note = el("div", { id: "x-note" });
  if (lastNote && lastNote.id === id) note.append(flash(lastNote.text, lastNote.err));
  const operate = async (op, body, question) => {
    if (!(await confirmDialog(question))) return;
    try {
      const r = await post("/api/executions/" + encodeURIComponent(id) + "/" + op, body);
      lastNote = { id, text: op + (r.event ? " " + r.event : "") + ": now " + r.status };
    } catch (e) {
      lastNote = { id, text: op + " refused: " + e.message, err: true };
    }
    refresh();
  };
  if (res.operations.includes("send")) {
    const ev = el("select", { id: "x-event" }, res.events.map((e) => el("option", { value: e }, e)));
    ops.append(el("label", {}, "Event ", ev), el("button", { class: "primary", id: "x-send", disabled: res.events.length === 0,
      onclick: () => operate("send", { event: ev.value }, "Send event " + ev.value + " to " + x.machine + " execution " + id + " (waiting in " + x.state + ")?") }, "Send"));
  }
  if (res.operations.includes("stop")) {
    ops.append(el("button", { class: "danger", id: "x-stop",
      onclick: () => operate("stop", {}, "Stop " + x.machine + " execution " + id + " (" + x.status + " in " + x.state + ")? Nothing more runs until it is resumed.") }, "Stop"));
  }
  if (res.operations.includes("resume")) {
    ops.append(el("button", { class: "primary", id: "x-resume",
      onclick: () => operate("resume", {}, "Resume " + x.machine + " execution " + id + " from its last committed step?") }, "Resume"));
  }
  if (res.operations.length === 0) ops.append(el("span", { class: "muted" }, "Nothing to do: the execution is " + x.status + "."));

  const timeline = el("ol", { class: "timeline", id: "x-history" }, res.history.map((h) =>
    el("li", { class: h.outcome === "retry" ? "retry" : h.outcome === "failed" ? "failed" : h.outcome },
      el("div", {}, el("span", { class: "lambda" }, h.lambda ? "λ" + h.lambda : "λ?"), "  step " + h.step + "  ",
        h.from + " —" + h.event + "→ " + h.to, "  ", el("span", { class: "muted" }, h.outcome + (h.retries ? " (retry " + h.retries + ")" : "") + ", " + duration(h.duration_ns))),
      h.actions.length ? el("div", { class: "actions" }, h.actions.join(", ")) : null,
      h.error ? el("div", { class: "error" }, h.error) : null)));
  if (res.history.length === 0) timeline.append(el("li", { class: "muted" }, "No step has run yet."));

  setView(
    el("h1", {}, "Execution ", el("span", { class: "muted" }, id)),
    note,
    el("section", { class: "card" }, facts, el("div", { class: "ops-wrap" }, el("h2", {}, "Operate"), ops)),
    ctxCard,
    el("section", { class: "card" }, el("h2", {}, "History"), timeline));

  // Follow the execution while something may change without us.
  function refresh() {
    cleanup();
    timers.push(setTimeout(() => route(), 50));
  }
  if (x.status === "running") timers.push(setTimeout(() => route(), 700));
}

// ---- Router

async function route() {
  cleanup();
  const hash = location.hash.slice(1) || "/machines";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  document.getElementById("nav-machines").classList.toggle("active", path.startsWith("/machines"));
  document.getElementById("nav-executions").classList.toggle("active", path.startsWith("/execution"));
  try {
    if (path.startsWith("/execution/")) await executionPage(decodeURIComponent(path.slice("/execution/".length)));
    else if (path.startsWith("/executions")) await executionsPage(params);
    else await machinesPage();
  } catch (e) {
    setView(flash(e.message, true));
  }
}

window.addEventListener("hashchange", route);
route();
