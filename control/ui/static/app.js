// The dashboard: live data in, rows out, actions through the API (docs/dashboard.md).

import { allowed, api, callerRole } from "./api.js";
import { LiveData } from "./live.js";
import {
  countCategories,
  datasetRows,
  filterRows,
  inFlight,
  namesOf,
  nodeRows,
  UNBOUND,
} from "./model.js";
import {
  drawDatasetRow,
  drawDetail,
  drawEvents,
  drawFlight,
  drawNodes,
  drawSnapshots,
  el,
} from "./render.js";
import { VirtualList } from "./virtual.js";

const ROW_HEIGHT = 28;
const LANDED_MS = 15000;
const $ = (id) => document.getElementById(id);

const view = {
  rows: [],
  shown: [],
  names: new Map(),
  nodes: [],
  selected: null,
  role: null,
  flights: new Map(), // dataset id -> {from, landedAt}
  painted: false,
};

const now = () => Date.now() / 1000;

const list = new VirtualList($("dataset-list"), ROW_HEIGHT, (row, element) =>
  drawDatasetRow(row, element, view.names, view.selected),
);

function applyFilter() {
  view.shown = filterRows(view.rows, $("filter").value, $("search").value);
  const counts = countCategories(view.rows);
  const total = counts.all;
  $("dataset-count").textContent =
    view.shown.length === total ? `${total}` : `${view.shown.length} of ${total}`;
  for (const option of $("filter").options) {
    const n = counts[option.value] || 0;
    option.textContent = `${option.value} (${n})`;
  }
  list.setRows(view.shown);
}

/** Track moves: remember where each started, and keep a landed one on show for a while. */
function flightEntries(rows) {
  const moving = inFlight(rows);
  const movingIds = new Set(moving.map((row) => row.id));
  const byId = new Map(rows.map((row) => [row.id, row]));
  const t = Date.now();
  const entries = [];
  for (const row of moving) {
    const known = view.flights.get(row.id);
    const from = known && !known.landedAt ? known.from : row.progress.holder || (known && known.from);
    view.flights.set(row.id, { from, landedAt: null, to: row.dataset.primary });
    entries.push({ row, from, landed: false });
  }
  for (const [id, flight] of view.flights) {
    if (movingIds.has(id)) continue;
    const row = byId.get(id);
    if (!row || (flight.landedAt && t - flight.landedAt > LANDED_MS)) {
      view.flights.delete(id);
      continue;
    }
    if (!flight.landedAt) flight.landedAt = t;
    if (row.progress.stage === "mounted") entries.push({ row, from: flight.from, landed: true });
  }
  return entries.slice(0, 100);
}

function redraw(data, what) {
  view.names = namesOf(data.nodes);
  view.nodes = data.nodes;
  drawNodes($("node-table").tBodies[0], nodeRows(data), now());
  if (what.has("configuration") || what.has("state") || what.has("leases") || what.has("nodes")) {
    view.rows = datasetRows(data);
    applyFilter();
    drawFlight($("flight-list"), $("flight-empty"), flightEntries(view.rows), view.names);
    drawSelected();
    if (what.has("configuration") || what.has("state")) loadSnapshots();
  }
  drawEvents($("event-list"), data.events, view.names);
  $("summary").textContent =
    `${data.nodes.length} nodes · ${view.rows.length} datasets · ` +
    `${inFlight(view.rows).length} in flight`;
  if (!view.painted) {
    view.painted = true;
    requestAnimationFrame(() => {
      performance.mark("shoal:first-paint");
      document.body.dataset.ready = "true";
    });
  }
}

function connection(up, error) {
  const badge = $("connection");
  badge.dataset.state = up ? "live" : "down";
  badge.textContent = up ? "live" : `reconnecting: ${error ? error.message : ""}`;
}

// -- the selected dataset and its actions -------------------------------------------------

function selectedRow() {
  return view.rows.find((row) => row.id === view.selected) || null;
}

function drawSelected() {
  const row = selectedRow();
  $("detail").hidden = row === null;
  if (row === null) return;
  drawDetail(
    { name: $("detail-name"), facts: $("detail-facts"), conditions: $("detail-conditions") },
    row,
    view.names,
    now(),
  );
  const targets = view.nodes
    .filter((node) => node.uuid !== row.dataset.primary && !node.fence)
    .map((node) => [node.uuid, `${view.names.get(node.uuid)}${node.live ? "" : " (not live)"}`]);
  setOptions($("move-target"), targets);
  const deleted = row.dataset.deleted;
  $("move-button").disabled = deleted || targets.length === 0 || !allowed(view.role, "move");
  $("snapshot-button").disabled = deleted || row.dataset.primary === UNBOUND || !allowed(view.role, "snapshot");
  $("release-button").hidden = row.lease === null;
  $("release-button").disabled = !allowed(view.role, "release");
  $("delete-button").disabled = deleted || !allowed(view.role, "delete");
}

/** Make a select offer exactly ``choices`` ([value, text] pairs), keeping the operator's
 * choice; options are only replaced when the choices changed, so a live update never closes
 * an open list or swaps the option being picked. */
function setOptions(select, choices) {
  const drawn = [...select.options].map((o) => [o.value, o.textContent]);
  if (JSON.stringify(drawn) === JSON.stringify(choices)) return;
  const choice = select.value;
  select.replaceChildren(...choices.map(([value, text]) => {
    const option = el("option", null, text);
    option.value = value;
    return option;
  }));
  if (choices.some(([value]) => value === choice)) select.value = choice;
}

async function loadSnapshots() {
  const id = view.selected;
  if (!id) return;
  try {
    const found = await api.snapshots(id);
    if (view.selected === id) drawSnapshots($("detail-snapshots"), found);
  } catch {
    drawSnapshots($("detail-snapshots"), []);
  }
}

function select(id) {
  view.selected = id;
  $("action-result").textContent = "";
  drawSelected();
  list.draw();
  loadSnapshots();
}

async function act(what, call) {
  const result = $("action-result");
  result.dataset.state = "working";
  result.textContent = `${what}…`;
  try {
    await call();
    result.dataset.state = "ok";
    result.textContent = `${what}: asked; the page follows it live.`;
  } catch (error) {
    result.dataset.state = "refused";
    result.textContent = `${what} refused${error.status ? ` (${error.status})` : ""}: ${error.message}`;
  }
}

function wireActions() {
  $("dataset-list").addEventListener("click", (event) => {
    const row = event.target.closest(".row");
    if (row && row.dataset.id) select(row.dataset.id);
  });
  $("search").addEventListener("input", applyFilter);
  $("filter").addEventListener("change", applyFilter);
  $("move-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const row = selectedRow();
    const target = $("move-target").value;
    if (!row || !target) return;
    act(`Move ${row.name || row.id} to ${view.names.get(target)}`, () => api.move(row.id, target));
  });
  $("snapshot-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const row = selectedRow();
    if (!row) return;
    const name = $("snapshot-name").value.trim();
    await act(`Snapshot ${row.name || row.id}`, () => api.snapshot(row.id, name || null));
    loadSnapshots();
  });
  $("release-button").addEventListener("click", () => {
    const row = selectedRow();
    if (row) act(`Release the lease on ${row.name || row.id}`, () => api.releaseLease(row.id));
  });
  $("delete-button").addEventListener("click", () => {
    const row = selectedRow();
    if (!row) return;
    $("confirm-name").textContent = row.name || row.id;
    $("confirm-delete").dataset.id = row.id;
    $("confirm-delete").showModal();
  });
  $("confirm-delete").addEventListener("close", () => {
    const dialog = $("confirm-delete");
    const row = view.rows.find((r) => r.id === dialog.dataset.id);
    if (dialog.returnValue === "delete" && row) {
      act(`Delete ${row.name || row.id}`, () => api.remove(row.id));
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && document.activeElement !== $("search")) {
      event.preventDefault();
      $("search").focus();
    }
  });
}

async function main() {
  wireActions();
  callerRole().then((role) => {
    view.role = role;
    $("role").textContent = role ? `role: ${role}` : "";
    drawSelected();
  });
  const live = new LiveData(redraw, connection);
  for (;;) {
    try {
      await live.start();
      connection(true);
      return;
    } catch (error) {
      connection(false, error);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

main();
