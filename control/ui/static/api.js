// The dashboard's one door to the REST API: same origin, so the browser's client certificate
// (mutual TLS) or plain HTTP on loopback applies as for any other page of this service.

/** A refusal or failure of the API, with its status and the API's own description. */
export class ApiError extends Error {
  constructor(status, description) {
    super(description);
    this.status = status;
  }
}

async function call(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let answer;
  try {
    answer = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, `The control service cannot be reached (${error.message}).`);
  }
  const text = await answer.text();
  let decoded = null;
  try {
    decoded = text ? JSON.parse(text) : null;
  } catch {
    decoded = null;
  }
  if (!answer.ok) {
    const said = decoded && decoded.description;
    throw new ApiError(answer.status, said || `${method} ${path} answered ${answer.status}.`);
  }
  return decoded;
}

const id = encodeURIComponent;

/** Every item of a paginated listing (`?limit=` and `continue`, docs/api.md), page by page. */
async function allPages(path, limit = 1000) {
  const items = [];
  let token = null;
  do {
    const page = await call(
      "GET", `${path}?limit=${limit}${token ? `&continue=${id(token)}` : ""}`,
    );
    items.push(...page.items);
    token = page.continue;
  } while (token);
  return items;
}

/** The calls the dashboard makes. */
export const api = {
  versions: () => call("GET", "/v1/shoal/watch?timeout=0"),
  watch: (versions, timeout) =>
    call(
      "GET",
      `/v1/shoal/watch?configuration=${versions.configuration}&state=${versions.state}&timeout=${timeout}`,
    ),
  datasets: () => allPages("/v1/shoal/datasets"),
  state: () => call("GET", "/v1/state/datasets"),
  leases: () => call("GET", "/v1/configuration/leases"),
  conditions: () => call("GET", "/v1/shoal/conditions"),
  nodes: () => call("GET", "/v1/shoal/nodes"),
  classes: () => call("GET", "/v1/shoal/classes"),
  snapshots: (datasetId) => call("GET", `/v1/shoal/snapshots?dataset=${id(datasetId)}`),
  newestEvents: (limit) => call("GET", `/v1/shoal/events?limit=${limit}`),
  eventsSince: (since, limit) => call("GET", `/v1/shoal/events?since=${since}&limit=${limit}`),
  move: (datasetId, primary) =>
    call("POST", `/v1/configuration/datasets/${id(datasetId)}`, { primary }),
  snapshot: (datasetId, name) =>
    call("POST", "/v1/shoal/snapshots", name ? { dataset_id: datasetId, name } : { dataset_id: datasetId }),
  remove: (datasetId) => call("DELETE", `/v1/configuration/datasets/${id(datasetId)}`),
  releaseLease: (datasetId) => call("DELETE", `/v1/configuration/leases/${id(datasetId)}`),
};

/**
 * The caller's role, if the API says it: the hook for role-based actions.
 *
 * Asks `GET /v1/shoal/whoami` and reads `{role}`; a service without that route (404) or an
 * answer without a role gives `null`, and the page then offers every action and lets the
 * API's refusals (403) speak.
 */
export async function callerRole() {
  try {
    const me = await call("GET", "/v1/shoal/whoami");
    return (me && typeof me.role === "string" && me.role) || null;
  } catch {
    return null;
  }
}

/** Whether `role` may run `action` (move, snapshot, delete, release); unknown roles may. */
export function allowed(role, action) {
  return role === null || !READ_ONLY.includes(role) || !ACTIONS.includes(action);
}

const ACTIONS = ["move", "snapshot", "delete", "release"];

const READ_ONLY = ["viewer", "reader", "read-only", "readonly", "monitor"];
