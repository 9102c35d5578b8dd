// Live data: load everything once, then follow the API's watch (GET /v1/shoal/watch, a long
// poll) and read again only what moved: the configuration or the state. The event log follows
// GET /v1/shoal/events?since=N. Nodes (liveness, capacity) and leases are read every few
// seconds, since liveness and a lease's time left change with time alone.

import { api } from "./api.js";
import { withMoves } from "./model.js";

const WATCH_TIMEOUT = 25;
const NODE_REFRESH_MS = 5000;
const RETRY_MS = 1000;
const EVENT_PAGE = 200;

/** Keeps the API's answers current and calls `onChange(data, what)` after each refresh. */
export class LiveData {
  constructor(onChange, onConnection) {
    this.onChange = onChange;
    this.onConnection = onConnection;
    this.data = { datasets: [], state: [], leases: [], conditions: [], nodes: [], events: [] };
    this.versions = null;
    this.lastEvent = null;
    this.pending = new Set();
    this.running = null;
  }

  /** Load everything, then follow the watch until the page goes away. */
  async start() {
    this.versions = await api.versions();
    await this.refresh(["configuration", "state", "nodes", "events"]);
    this.follow();
    setInterval(() => this.request(["nodes", "leases"]).catch(() => {}), NODE_REFRESH_MS);
  }

  /** Read these parts again soon (parts asked while a read runs are read right after it). */
  request(parts) {
    for (const part of parts) this.pending.add(part);
    if (!this.running) this.running = this.drain();
    return this.running;
  }

  async drain() {
    try {
      while (this.pending.size > 0) {
        const parts = [...this.pending];
        this.pending.clear();
        await this.refresh(parts);
      }
    } finally {
      this.running = null;
    }
  }

  async refresh(parts) {
    const want = new Set(parts);
    const reads = [];
    const data = this.data;
    if (want.has("configuration") && this.lastEvent !== null) {
      // The events since the last read are few: show their moves at once, then read the rest.
      const fresh = await this.readEvents();
      const moved = withMoves(data.datasets, fresh);
      if (moved !== data.datasets) {
        data.datasets = moved;
        this.onChange(data, new Set(["configuration"]));
      }
      want.add("events-read");
    }
    if (want.has("configuration")) {
      reads.push(api.datasets().then((x) => (data.datasets = x)));
      want.add("leases");
    }
    if (want.has("leases")) reads.push(api.leases().then((x) => (data.leases = x)));
    if (want.has("state")) {
      reads.push(api.state().then((x) => (data.state = x)));
      reads.push(api.conditions().then((x) => (data.conditions = x)));
    }
    if (want.has("nodes")) reads.push(api.nodes().then((x) => (data.nodes = x)));
    const eventsRead = want.has("events-read");
    if (!eventsRead && (want.has("events") || want.has("configuration") || want.has("state"))) {
      reads.push(this.readEvents());
    }
    const started = performance.now();
    await Promise.all(reads);
    const read = performance.now();
    this.onChange(data, want);
    // How long the reads and the drawing took, for bench/dashboard.py and the curious.
    performance.measure("shoal:read", { start: started, end: read });
    performance.measure("shoal:draw", { start: read, end: performance.now() });
  }

  async readEvents() {
    const found = this.lastEvent === null
      ? await api.newestEvents(EVENT_PAGE)
      : await api.eventsSince(this.lastEvent, EVENT_PAGE);
    if (found.length === 0) return found;
    this.lastEvent = found[found.length - 1].id;
    this.data.events = [...this.data.events, ...found].slice(-EVENT_PAGE);
    return found;
  }

  async follow() {
    for (;;) {
      try {
        const seen = this.versions;
        const now = await api.watch(seen, WATCH_TIMEOUT);
        this.onConnection(true);
        const parts = [];
        if (now.configuration !== seen.configuration) parts.push("configuration");
        if (now.state !== seen.state) parts.push("state");
        this.versions = now;
        if (parts.length > 0) await this.request(parts);
      } catch (error) {
        this.onConnection(false, error);
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }
}
