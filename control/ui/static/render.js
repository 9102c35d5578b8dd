// Drawing the dashboard's parts from the rows of model.js. Text goes in with textContent only,
// never as HTML, so names and messages from the API cannot inject markup.

import {
  STAGE_STEPS,
  conditionText,
  describeSize,
  duration,
  eventText,
  named,
  stageStep,
  withNames,
} from "./model.js";

/** A new element with a class and text. */
export function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined && text !== null) element.textContent = text;
  return element;
}

function capacityCell(capacity) {
  const cell = el("td", "capacity");
  if (!capacity) {
    cell.textContent = "not reported";
    return cell;
  }
  const { total, free } = capacity;
  const words = total ? `${describeSize(free)} free of ${describeSize(total)}` : "unknown size";
  const bar = el("meter");
  if (total) {
    bar.min = 0;
    bar.max = total;
    bar.value = total - (free ?? 0);
    bar.high = total * 0.9;
  }
  cell.append(bar, el("span", null, ` ${words} · ${capacity.backend}${capacity.shared ? ", shared" : ""}`));
  return cell;
}

/** The node table. */
export function drawNodes(tbody, rows, now) {
  tbody.replaceChildren(
    ...rows.map((row) => {
      const tr = el("tr");
      tr.dataset.node = row.node.uuid;
      tr.dataset.name = row.name;
      const liveness = el("td");
      const badge = el("span", `badge ${row.liveness}`, row.liveness);
      liveness.append(badge);
      if (row.node.draining) liveness.append(" ", el("span", "badge draining", "draining"));
      if (row.node.fence) liveness.title = row.node.fence.reason;
      const seen = now - row.node.last_seen;
      liveness.append(el("span", "muted", ` seen ${duration(seen)} ago`));
      const labels = Object.entries(row.node.labels || {})
        .filter(([key]) => key !== "name")
        .map(([key, value]) => `${key}=${value}`)
        .join(", ");
      const held = el("td", "held", `${row.held} held`);
      if (row.desired !== row.held) held.append(el("span", "muted", ` (${row.desired} desired)`));
      tr.append(
        el("td", "name", row.name),
        liveness,
        el("td", null, row.zone || "—"),
        el("td", "labels", labels || "—"),
        capacityCell(row.node.capacity),
        held,
      );
      return tr;
    }),
  );
}

/** One dataset row of the virtual list. */
export function drawDatasetRow(row, element, names, selected) {
  element.dataset.id = row.id;
  element.dataset.category = row.status.category;
  element.classList.toggle("selected", row.id === selected);
  const actual = row.actual && row.actual.primary
    ? `${named(row.actual.primary, names)}${row.actual.path ? `: ${row.actual.path}` : " (attached)"}`
    : row.actual ? "detached" : "—";
  const lease = row.lease
    ? `${named(row.lease.node_uuid, names)}${row.lease.expires === null ? "" : ` ${duration(row.lease.expires)}`}`
    : "";
  const firstCondition = row.conditions.length ? row.conditions[0].message : "";
  const cells = [
    ["name", row.name || row.id.slice(0, 8)],
    ["status", row.status.word],
    ["desired", named(row.dataset.primary, names)],
    ["actual", actual],
    ["size", describeSize(row.dataset.maximum_size)],
    ["class", row.dataset.storage_class || ""],
    ["lease", lease],
    ["conditions", firstCondition],
  ];
  if (element.childElementCount !== cells.length) {
    element.replaceChildren(...cells.map(([name]) => el("span", name)));
  }
  cells.forEach(([, text], index) => {
    const cell = element.children[index];
    if (cell.textContent !== text) cell.textContent = text;
    cell.title = text;
  });
}

/** The moves in flight, and those that landed a moment ago. */
export function drawFlight(list, empty, entries, names) {
  list.replaceChildren(
    ...entries.map((entry) => {
      const li = el("li", entry.landed ? "landed" : "moving");
      li.dataset.id = entry.row.id;
      const name = entry.row.name || entry.row.id.slice(0, 8);
      const to = named(entry.row.dataset.primary, names);
      const from = entry.from ? named(entry.from, names) : to;
      const bar = el("progress");
      bar.max = STAGE_STEPS;
      bar.value = entry.landed ? STAGE_STEPS : stageStep(entry.row.progress.stage);
      const words = entry.landed
        ? `${from === to ? "mounted" : "landed"} on ${to}`
        : `${entry.row.progress.stage}${entry.row.conditions.length ? ` · ${entry.row.status.word}` : ""}`;
      const route = from === to ? ` on ${to} ` : ` ${from} → ${to} `;
      li.append(el("span", "name", name), el("span", "route", route), bar, el("span", "stage", ` ${words}`));
      return li;
    }),
  );
  empty.hidden = entries.length > 0;
}

/** The event log, newest first. */
export function drawEvents(list, events, names) {
  const newest = [...events].reverse();
  list.replaceChildren(
    ...newest.map((event) => {
      const li = el("li", `event ${event.kind}`);
      li.dataset.kind = event.kind;
      const at = new Date(event.at * 1000).toLocaleTimeString();
      li.append(
        el("time", null, at),
        el("span", "kind", ` ${event.kind} `),
        el("span", "message", eventText(event, names)),
        el("span", "actor", event.actor ? ` (${withNames(event.actor, names)})` : ""),
      );
      return li;
    }),
  );
}

/** The selected dataset's facts and conditions. */
export function drawDetail(parts, row, names, now) {
  parts.name.textContent = row.name || row.id;
  const d = row.dataset;
  const facts = [
    ["id", row.id],
    ["status", row.status.word],
    ["desired node", named(d.primary, names)],
    ["actual", row.actual && row.actual.primary ? named(row.actual.primary, names) : row.actual ? "detached" : "not reported"],
    ["mounted at", (row.actual && row.actual.path) || "—"],
    ["size", describeSize(d.maximum_size) || "—"],
    ["class", d.storage_class || "—"],
    ["filesystem", d.filesystem],
    ["access mode", d.access_mode],
    ["epoch", String(d.epoch)],
    ["lease", row.lease ? `held by ${named(row.lease.node_uuid, names)}${row.lease.expires === null ? "" : `, ${duration(row.lease.expires)} left`}` : "none"],
  ];
  parts.facts.replaceChildren(...facts.flatMap(([key, value]) => [el("dt", null, key), el("dd", null, value)]));
  parts.conditions.replaceChildren(
    ...(row.conditions.length
      ? row.conditions.map((c) => el("li", `condition ${c.kind}`, conditionText(c, names, now)))
      : [el("li", "muted", "none: nothing blocks it")]),
  );
}

/** The selected dataset's snapshots. */
export function drawSnapshots(list, snapshots) {
  const live = snapshots.filter((s) => !s.deleted);
  list.replaceChildren(
    ...(live.length
      ? live.map((s) => el("li", s.ready ? "ready" : "pending", `${s.name}: ${s.ready ? "ready" : "being made"}`))
      : [el("li", "muted", "none")]),
  );
}
