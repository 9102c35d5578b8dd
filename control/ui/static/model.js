// The dashboard's pure core: joins what the API answers into rows, and words them.
// No DOM, no fetch: every function takes values and returns values.
// The status words mirror control/cli/status.py, so the page and `shoal dataset list` agree.

export const UNBOUND = "00000000-0000-0000-0000-000000000000";

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** A size in bytes as people read it: 1.5 GiB. */
export function describeSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, "");
  return `${text} ${UNITS[unit]}`;
}

/** Seconds as a short duration: 45s, 3m, 2h, 4d. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** A node's display name: its `name` label, else its host. */
export function nodeName(node) {
  return (node.labels && node.labels.name) || node.host || node.uuid.slice(0, 8);
}

/** The zone label of a node, if any. */
export function zoneOf(node) {
  const labels = node.labels || {};
  return labels["topology.kubernetes.io/zone"] || labels.zone || "";
}

/** uuid -> display name of every node. */
export function namesOf(nodes) {
  const names = new Map();
  for (const node of nodes) names.set(node.uuid, nodeName(node));
  return names;
}

/** A node uuid by its name, as people see it (unknown uuids stay short). */
export function named(uuid, names) {
  if (!uuid) return "";
  if (uuid === UNBOUND) return "unbound";
  return names.get(uuid) || uuid.slice(0, 8);
}

/** `text` with each known node uuid replaced by the node's name (as the CLI does). */
export function withNames(text, names) {
  let result = text || "";
  for (const [uuid, name] of names) {
    if (result.includes(uuid)) result = result.split(`node ${uuid}`).join(name).split(uuid).join(name);
  }
  return result;
}

function groupBy(items, key) {
  const found = new Map();
  for (const item of items) {
    const k = key(item);
    if (k === null || k === undefined) continue;
    const list = found.get(k);
    if (list) list.push(item);
    else found.set(k, [item]);
  }
  return found;
}

/** A dataset's conditions: errors first (permanent ones first), then waits, oldest first. */
export function ordered(conditions) {
  const rank = (c) => [c.kind === "error" ? 0 : 1, c.permanent ? 0 : 1, c.since];
  return [...conditions].sort((a, b) => {
    const x = rank(a);
    const y = rank(b);
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
}

/** One condition in plain words: `node1: error (create, 3 attempts, for 2m, permanent): ...`. */
export function conditionText(condition, names, now) {
  const facts = condition.step ? [condition.step] : [];
  if (condition.kind === "error") {
    facts.push(`${condition.attempts} attempt${condition.attempts === 1 ? "" : "s"}`);
  }
  facts.push(`for ${duration(now - condition.since)}`);
  if (condition.permanent) facts.push("permanent");
  const where = named(condition.node_uuid, names);
  return `${where}: ${condition.kind} (${facts.join(", ")}): ${withNames(condition.message, names)}`;
}

/** Where a dataset's volume is, seen from its desired primary (control/progress.py). */
export function progressTowards(state, primary) {
  if (!state) return { stage: "unreported", holder: null, path: null };
  if (!state.primary) return { stage: "detached", holder: null, path: null };
  if (state.primary !== primary) return { stage: "elsewhere", holder: state.primary, path: null };
  if (!state.path) return { stage: "attached", holder: primary, path: null };
  return { stage: "mounted", holder: primary, path: state.path };
}

const STAGE_STEP = { unreported: 0, elsewhere: 1, detached: 2, attached: 3, mounted: 4 };
export const STAGE_STEPS = 4;

/** How far along a dataset is, from 0 to STAGE_STEPS (mounted). */
export function stageStep(stage) {
  return STAGE_STEP[stage] ?? 0;
}

/** What the dataset is doing, in a few words, and its category for the filter. */
export function statusOf(dataset, state, conditions, names) {
  if (dataset.released) return { word: "released", category: "deleted" };
  if (dataset.deleted) {
    return state ? { word: "deleting", category: "deleting" } : { word: "deleted", category: "deleted" };
  }
  let word;
  let category;
  if (dataset.primary === UNBOUND) {
    word = "unbound";
    category = "unbound";
  } else {
    const progress = progressTowards(state, dataset.primary);
    if (progress.stage === "mounted") return { word: "mounted", category: "mounted" };
    if (progress.stage === "unreported") {
      word = "pending";
      category = "pending";
    } else if (progress.stage === "elsewhere") {
      word = `moving (on ${named(progress.holder, names)})`;
      category = "moving";
    } else {
      word = progress.stage;
      category = "moving";
    }
  }
  const found = ordered(conditions);
  if (found.length === 0) return { word, category };
  const first = found[0];
  const kind = first.kind === "error" ? "error" : "waiting";
  return { word: `${kind}: ${withNames(first.message, names)}`, category: kind };
}

/**
 * The dataset rows: each dataset joined with where it is, its lease and its conditions.
 * `api` holds the answers: datasets, state, leases, conditions, nodes.
 */
export function datasetRows(api) {
  const names = namesOf(api.nodes);
  const state = new Map(api.state.map((s) => [s.dataset_id, s]));
  const leases = new Map(api.leases.map((l) => [l.dataset_id, l]));
  const conditions = groupBy(api.conditions, (c) => c.dataset_id);
  const rows = [];
  for (const dataset of api.datasets) {
    if (dataset.deleted && !state.has(dataset.dataset_id)) continue;
    const actual = state.get(dataset.dataset_id) || null;
    const mine = conditions.get(dataset.dataset_id) || [];
    const status = statusOf(dataset, actual, mine, names);
    const name = (dataset.metadata && dataset.metadata.name) || "";
    rows.push({
      id: dataset.dataset_id,
      name,
      dataset,
      actual,
      lease: leases.get(dataset.dataset_id) || null,
      conditions: ordered(mine),
      status,
      progress: progressTowards(actual, dataset.primary),
      search: `${name} ${dataset.dataset_id} ${named(dataset.primary, names)} ${
        actual && actual.primary ? named(actual.primary, names) : ""
      } ${dataset.storage_class || ""} ${status.word}`.toLowerCase(),
    });
  }
  rows.sort((a, b) => {
    const x = a.name || `~${a.id}`;
    const y = b.name || `~${b.id}`;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return rows;
}

/** The rows a filter category and a search text keep. */
export function filterRows(rows, category, text) {
  const needle = (text || "").trim().toLowerCase();
  if (category === "all" && !needle) return rows;
  return rows.filter(
    (row) =>
      (category === "all" || row.status.category === category) &&
      (!needle || row.search.includes(needle)),
  );
}

/** How many rows fall in each filter category. */
export function countCategories(rows) {
  const counts = { all: rows.length };
  for (const row of rows) counts[row.status.category] = (counts[row.status.category] || 0) + 1;
  return counts;
}

/** The rows on their way somewhere: bound, not deleted, reported, not mounted where asked. */
export function inFlight(rows) {
  return rows.filter(
    (row) =>
      !row.dataset.deleted &&
      row.dataset.primary !== UNBOUND &&
      row.progress.stage !== "mounted" &&
      row.progress.stage !== "unreported",
  );
}

/** Per node: the datasets it should hold (desired) and holds (reported attached or mounted). */
export function nodeRows(api) {
  const desired = new Map();
  const held = new Map();
  for (const dataset of api.datasets) {
    if (!dataset.deleted) desired.set(dataset.primary, (desired.get(dataset.primary) || 0) + 1);
  }
  for (const state of api.state) {
    if (state.primary) held.set(state.primary, (held.get(state.primary) || 0) + 1);
  }
  return [...api.nodes]
    .sort((a, b) => (nodeName(a) < nodeName(b) ? -1 : nodeName(a) > nodeName(b) ? 1 : 0))
    .map((node) => ({
      node,
      name: nodeName(node),
      zone: zoneOf(node),
      liveness: node.fence ? "fenced" : node.liveness || (node.live ? "live" : "dead"),
      desired: desired.get(node.uuid) || 0,
      held: held.get(node.uuid) || 0,
    }));
}

/**
 * The datasets with the moves of `events` applied (each `moved` event's `details.to` becomes its
 * dataset's primary): what the page shows at once, before the full listing is read again.
 * Answers the same array when no event moves a dataset it lists.
 */
export function withMoves(datasets, events) {
  const moved = new Map();
  for (const event of events) {
    if (event.kind === "moved" && event.dataset_id && event.details && event.details.to) {
      moved.set(event.dataset_id, event.details.to);
    }
  }
  if (moved.size === 0) return datasets;
  let changed = false;
  const result = datasets.map((dataset) => {
    const to = moved.get(dataset.dataset_id);
    if (to === undefined || to === dataset.primary) return dataset;
    changed = true;
    return { ...dataset, primary: to };
  });
  return changed ? result : datasets;
}

/** One event as a line of the log. */
export function eventText(event, names) {
  return withNames(event.message, names);
}
