// blindframe dashboard: the artist's jobs, live. Plain JavaScript, no dependencies; talks only to
// the server that served it (relative URLs under the per-session token). Every value from the
// chain is put in the page as text (textContent), never as HTML.
"use strict";

const STATES = ["open", "claimed", "committed", "revealed", "verified", "settled", "failed", "contested"];
const PROGRESS = ["claimed", "committed", "revealed", "verified", "settled"];
const HUES = [205, 32, 135, 285, 355, 60, 175, 320];  // distinct colours for render nodes
const PAYMENTS = [
  ["escrowPosted", "Escrow posted"],
  ["escrowLeft", "Escrow left"],
  ["paidToWorkers", "Paid to render nodes"],
  ["refundable", "Refundable now"],
  ["refunded", "Refunded"],
  ["compensation", "Compensation"],
  ["bondsPosted", "Dispute bonds posted"],
  ["bondsReturned", "Bonds returned"],
  ["clientPending", "Your pending balance"],
];

const state = {
  current: null,      // selected job key
  chosen: false,      // the artist picked a job (else follow the newest)
  stream: null,       // EventSource of the selected job
  seen: new Set(),    // event ids shown
  tiles: new Map(),   // tile index -> element
  gridShape: "",
  frame: 0,           // an animation job's frame the tile grid shows
  doc: null,          // the last snapshot shown (re-rendered when another frame is picked)
  nodes: new Map(),   // address -> {label, hue}
  jobs: [],
};

function $(id) { return document.getElementById(id); }

function el(tag, options = {}, ...children) {
  const node = document.createElement(tag);
  if (options.cls) node.className = options.cls;
  if (options.text !== undefined) node.textContent = String(options.text);
  if (options.title) node.title = options.title;
  for (const [k, v] of Object.entries(options.data || {})) node.dataset[k] = String(v);
  for (const child of children) if (child) node.append(child);
  return node;
}

function eth(wei) {
  let value;
  try { value = BigInt(wei || "0"); } catch (_) { return "?"; }
  const unit = 10n ** 18n;
  const sign = value < 0n ? "-" : "";
  if (value < 0n) value = -value;
  const whole = value / unit;
  let frac = (value % unit).toString().padStart(18, "0").replace(/0+$/, "");
  if (frac.length > 6) frac = frac.slice(0, 6);
  return `${sign}${whole}${frac ? "." + frac : ""} ETH`;
}

function short(text) {
  const s = String(text);
  if (/^0x[0-9a-fA-F]{40}$/.test(s)) return `${s.slice(0, 6)}…${s.slice(-4)}`;
  if (/^0x[0-9a-fA-F]{20,}$/.test(s)) return `${s.slice(0, 10)}…`;
  if (s.length > 48) return `${s.slice(0, 22)}…${s.slice(-8)}`;
  return s;
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// Tile-replicas verified per minute and the time left, as the snapshot computes them
// (client/pace.py): from the job's own pace, or the quote's estimate before the first tile.
function paceText(doc) {
  const parts = [];
  if (doc.tilesPerMinute != null) parts.push(`${Number(doc.tilesPerMinute.toPrecision(3))} tiles/min`);
  if (doc.etaSeconds == null) parts.push("time left unknown");
  else if (doc.etaSource === "quote" && doc.etaSeconds === 0) parts.push("past the quoted time");
  else parts.push(`about ${duration(doc.etaSeconds)} left${doc.etaSource === "quote" ? " (quoted)" : ""}`);
  return "· " + parts.join(", ");
}

function node(address) {
  if (!address) return null;
  let entry = state.nodes.get(address);
  if (!entry) {
    const index = state.nodes.size;
    entry = { label: String.fromCharCode(65 + (index % 26)), hue: HUES[index % HUES.length] };
    state.nodes.set(address, entry);
  }
  return entry;
}

function setConnection(kind, text) {
  const badge = $("connection");
  badge.dataset.state = kind;
  badge.textContent = text;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// -- jobs ---------------------------------------------------------------------------------------

function wantedFromHash() {
  const match = /(?:^#|&)job=([^&]+)/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

async function refreshJobs() {
  let data;
  try {
    data = await getJSON("api/jobs");
  } catch (error) {
    setConnection("error", "server unreachable");
    return;
  }
  state.jobs = data.jobs.filter((job) => !job.pending);
  if (!state.current) setConnection("live", "connected");
  renderJobs();
  const wanted = wantedFromHash();
  const keys = state.jobs.map((job) => job.key);
  let next = state.current;
  if (wanted && keys.includes(wanted)) next = wanted;
  else if (!state.chosen && keys.length) next = keys[keys.length - 1];
  if (next && next !== state.current) select(next, false);
}

function renderJobs() {
  const list = $("job-list");
  list.replaceChildren();
  $("no-jobs").hidden = state.jobs.length > 0;
  for (const job of [...state.jobs].reverse()) {
    const frame = (job.frame || []).slice().reverse().join("×");
    const counts = job.tileStates || {};
    const settled = counts.settled || 0;
    const item = el(
      "li",
      { data: { key: job.key }, title: job.key },
      el("strong", { text: `Job ${job.jobId}` }),
      document.createTextNode(` · ${job.kernel || "?"} ${frame}`),
      el("span", {
        cls: "meta",
        text: `${job.phase || "unknown"} · ${settled}/${job.tileCount || "?"} settled${job.decrypted ? " · decrypted" : ""}`,
      }),
    );
    item.setAttribute("aria-current", String(job.key === state.current));
    item.addEventListener("click", () => select(job.key, true));
    list.append(item);
  }
}

function select(key, byUser) {
  if (byUser) {
    state.chosen = true;
    history.replaceState(null, "", `#job=${encodeURIComponent(key)}`);
  }
  if (state.stream) state.stream.close();
  state.current = key;
  state.seen = new Set();
  state.tiles = new Map();
  state.gridShape = "";
  state.frame = 0;
  state.doc = null;
  $("grid").replaceChildren();
  $("extra").replaceChildren();
  $("frames").replaceChildren();
  $("events").tBodies[0].replaceChildren();
  renderJobs();
  setConnection("connecting", "connecting…");
  const stream = new EventSource(`api/jobs/${encodeURIComponent(key)}/stream`);
  stream.addEventListener("snapshot", (event) => {
    if (state.current !== key) return;
    render(JSON.parse(event.data));
  });
  stream.addEventListener("open", () => setConnection("live", "live"));
  stream.addEventListener("error", () => setConnection("error", "reconnecting…"));
  state.stream = stream;
}

// -- one job ------------------------------------------------------------------------------------

function render(doc) {
  $("job").hidden = false;
  state.doc = doc;
  const job = doc.job || {};
  const listed = state.jobs.find((j) => j.key === job.key);
  if (listed && !doc.error) {
    listed.phase = doc.phase;
    listed.tileStates = doc.tileStates;
    listed.decrypted = Boolean(doc.frame);
    renderJobs();
  }
  if (doc.error) {
    $("job-error").hidden = false;
    $("job-error").textContent = doc.error + (doc.hint ? ` (${doc.hint})` : "");
    setConnection("error", "chain unreachable");
    return;
  }
  $("job-error").hidden = true;
  setConnection("live", "live");
  // The artist's image and its tiles: a volume job's frame also holds a margin of canary tiles.
  const [h, w] = job.imageFrame || job.frame || [0, 0];
  const tiles = job.imageTiles ?? job.tileCount;
  const canaries = job.tileCount - tiles;
  const extra = canaries > 0 ? ` (+${canaries} ${canaries === 1 ? "canary" : "canaries"})` : "";
  const frames = (doc.frames || []).length;
  const animation = frames ? ` × ${frames} frames` : "";
  $("job-title").textContent = `Job ${job.jobId} · ${job.kernel} · ${w}×${h}${animation} · ${tiles} tiles${extra} × ${job.replication}`;
  document.title = `Job ${job.jobId} · blindframe`;
  $("phase").textContent = doc.phase;
  $("phase").dataset.phase = doc.phase;
  const left = job.deadline - doc.now;
  $("deadline").textContent = left > 0 ? `deadline in ${duration(left)}` : "deadline passed";
  $("eta").textContent = doc.phase === "rendering" ? paceText(doc) : "";
  $("fetch-hint").textContent = `blindframe client fetch ${job.jobId}`;
  renderBars(doc);
  renderFrames(doc.frames || []);
  renderGrid(doc);
  renderHolders(doc);
  renderPayments(doc.payments || {});
  renderFrame(doc.frame);
  renderEvents(doc.events || []);
}

function renderBars(doc) {
  const bars = $("bars");
  const total = (doc.slots && doc.slots.total) || 1;
  if (!bars.children.length) {
    for (const name of PROGRESS) {
      const fill = el("div", { cls: "fill" });
      fill.style.setProperty("background", `var(--${name})`);
      bars.append(el("div", { cls: "bar", data: { state: name } },
        el("span", { cls: "label" }), el("div", { cls: "track" }, fill)));
    }
  }
  for (const bar of bars.children) {
    const name = bar.dataset.state;
    const done = (doc.progress || {})[name] || 0;
    bar.querySelector(".label").textContent = `${name} ${done}/${total}`;
    bar.querySelector(".fill").style.setProperty("width", `${(100 * done) / total}%`);
  }
}

// An animation job: one bar per frame (its tiles with a verified result); a click shows that
// frame's tiles in the grid.
function renderFrames(frames) {
  const box = $("frames");
  $("frames-box").hidden = !frames.length;
  if (box.children.length !== frames.length) box.replaceChildren();
  for (const row of frames) {
    let item = box.children[row.frame];
    if (!item) {
      item = el("button", { data: { frame: row.frame } }, el("span", { cls: "label" }),
        el("div", { cls: "track" }, el("div", { cls: "fill" })));
      item.setAttribute("role", "listitem");
      item.addEventListener("click", () => {
        state.frame = row.frame;
        if (state.doc) render(state.doc);
      });
      box.append(item);
    }
    item.setAttribute("aria-pressed", String(row.frame === state.frame));
    item.querySelector(".label").textContent = `${row.frame + 1}: ${row.done}/${row.tiles}`;
    item.title = `frame ${row.frame + 1}: ${row.done} of ${row.tiles} tiles verified`;
    item.querySelector(".fill").style.setProperty("width", `${(100 * row.done) / Math.max(row.tiles, 1)}%`);
  }
}

function renderGrid(doc) {
  const grid = $("grid");
  const rows = doc.job.grid.rows;
  const cols = doc.job.grid.cols;
  // An animation's tiles repeat the grid once per frame: the grid shows the picked frame's.
  const shape = `${rows}x${cols}:${state.frame}`;
  if (state.gridShape !== shape) {
    grid.replaceChildren();
    $("extra").replaceChildren();
    state.tiles = new Map();
    grid.style.setProperty("grid-template-columns", `repeat(${cols}, minmax(18px, 72px))`);
    state.gridShape = shape;
  }
  // Place each tile at its (row, col); a second task on the same cell (a canary task of a
  // shade/post job) goes to the strip below.
  const cells = new Map();
  for (const tile of doc.tiles) {
    if (tile.frame !== undefined && tile.frame !== state.frame) continue;
    let element = state.tiles.get(tile.tile);
    if (!element) {
      element = el("div", { cls: "tile", data: { tile: tile.tile } },
        el("span", { cls: "id", text: tile.tile }), el("span", { cls: "slots" }), el("span", { cls: "holder" }));
      element.setAttribute("role", "gridcell");
      const cell = `${tile.row},${tile.col}`;
      if (tile.row !== undefined && !cells.has(cell)) {
        element.style.setProperty("grid-row", String(tile.row + 1));
        element.style.setProperty("grid-column", String(tile.col + 1));
        grid.append(element);
      } else {
        $("extra").append(element);
        $("extra-label").hidden = false;
      }
      state.tiles.set(tile.tile, element);
    }
    cells.set(`${tile.row},${tile.col}`, tile.tile);
    const holders = [...new Set(tile.slots.map((s) => s.worker).filter(Boolean))];
    element.dataset.state = tile.state;
    element.dataset.canary = String(Boolean(tile.canary));
    element.dataset.holder = holders.join(" ");
    const chip = element.querySelector(".holder");
    const first = node(holders[0]);
    chip.hidden = !first;
    if (first) {
      chip.textContent = holders.map((a) => node(a).label).join("");
      chip.style.setProperty("background", `hsl(${first.hue} 70% 60%)`);
    }
    const slots = element.querySelector(".slots");
    slots.replaceChildren();
    if (tile.slots.length > 1) {
      for (const slot of tile.slots) {
        const mark = el("span", { cls: "slot" });
        mark.style.setProperty("background", `var(--${slot.state})`);
        slots.append(mark);
      }
    }
    const who = holders.map((a) => `node ${node(a).label} ${short(a)}`).join(", ") || "no node yet";
    const where = tile.frame !== undefined ? ` of frame ${tile.frame + 1}` : "";
    element.title = `tile ${tile.tile}${where}${tile.canary ? " (canary)" : ""}: ${tile.state} · ${who}` +
      tile.slots.map((s) => `\n${s.juror ? "juror, lane" : "lane"} ${s.lane}: ${s.state}${s.leaseId !== null ? ` (lease ${s.leaseId})` : ""}`).join("");
  }
  const legend = $("legend");
  if (!legend.children.length) {
    for (const name of STATES) {
      const swatch = el("span", { cls: "swatch" });
      swatch.style.setProperty("background", `var(--${name})`);
      legend.append(el("li", {}, swatch, document.createTextNode(name)));
    }
  }
}

function renderHolders(doc) {
  const body = $("holders").tBodies[0];
  const held = new Map();
  for (const tile of doc.tiles) {
    for (const slot of tile.slots) if (slot.worker) held.set(slot.worker, (held.get(slot.worker) || 0) + 1);
  }
  for (const lease of doc.leases || []) if (!held.has(lease.worker)) held.set(lease.worker, 0);
  body.replaceChildren();
  const earnings = (doc.payments || {}).earnings || {};
  if (!held.size) {
    body.append(el("tr", {}, el("td", { text: "" }), el("td", { cls: "muted", text: "no node has claimed a tile yet" })));
  }
  for (const [address, count] of held) {
    const info = node(address);
    const dot = el("span", { cls: "swatch-dot" });
    dot.style.setProperty("background", `hsl(${info.hue} 70% 60%)`);
    body.append(el("tr", { data: { worker: address } },
      el("td", {}, dot),
      el("td", { text: `${info.label} · ${short(address)}`, title: address }),
      el("td", { cls: "num", text: count }),
      el("td", { cls: "num", text: eth(earnings[address] || "0") })));
  }
}

function renderPayments(payments) {
  const body = $("payments").tBodies[0];
  body.replaceChildren();
  for (const [key, label] of PAYMENTS) {
    if (payments[key] === undefined) continue;
    body.append(el("tr", { data: { key } }, el("th", { text: label }), el("td", { cls: "num", text: eth(payments[key]) })));
  }
}

function renderFrame(frame) {
  const img = $("frame-img");
  if (frame && frame.url) {
    if (img.getAttribute("src") !== frame.url) img.src = frame.url;
    img.hidden = false;
    $("frame-wait").hidden = true;
  } else {
    img.hidden = true;
    img.removeAttribute("src");
    $("frame-wait").hidden = false;
  }
}

const AMOUNTS = new Set(["amount", "escrow", "rewardPerTileReplica", "bond", "stake"]);

function cidText(value) {
  // CIDs travel on chain as the bytes of their text: show the text.
  const hex = String(value).replace(/^0x/, "");
  if (!/^([0-9a-f]{2})+$/i.test(hex)) return null;
  let text = "";
  for (let i = 0; i < hex.length; i += 2) text += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  return /^[A-Za-z0-9]+$/.test(text) ? text : null;
}

function describeArg(key, value) {
  if (Array.isArray(value)) return `[${value.map(short).join(",")}]`;
  if (AMOUNTS.has(key)) return eth(value);
  if (/Cid$/.test(key)) return short(cidText(value) || value);
  return short(value);
}

function describeArgs(args) {
  return Object.entries(args || {})
    .filter(([k]) => k !== "jobId")
    .map(([k, v]) => `${k}=${describeArg(k, v)}`)
    .join(" ");
}

function renderEvents(events) {
  const body = $("events").tBodies[0];
  const fresh = [];
  for (const event of events) {
    if (state.seen.has(event.id)) continue;
    state.seen.add(event.id);
    fresh.push(event);
  }
  const initial = body.children.length === 0;
  for (const event of fresh) {
    const row = el("tr", { data: { event: event.event, id: event.id } },
      el("td", { cls: "num", text: event.block }),
      el("td", { text: event.event }),
      el("td", { text: describeArgs(event.args), title: `tx ${event.tx}` }));
    if (!initial) row.classList.add("fresh");
    body.prepend(row);
  }
  while (body.children.length > 200) body.lastChild.remove();
  $("event-count").textContent = `(${state.seen.size})`;
}

window.addEventListener("hashchange", () => {
  const wanted = wantedFromHash();
  if (wanted && wanted !== state.current) select(wanted, true);
});

// Poll the job list: often while no job is shown (a new one should appear at once), then
// now and then (the selected job itself streams).
async function loop() {
  await refreshJobs();
  setTimeout(loop, state.current ? 5000 : 1000);
}
loop();
