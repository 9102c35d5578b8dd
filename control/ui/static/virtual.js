// A virtual list: however many rows there are, only those in view (plus a margin) are in the DOM.

/**
 * Renders `rows` into `viewport` (a scrolling element) with fixed-height rows.
 * `renderRow(row, element)` fills one row element; elements are reused as the view scrolls.
 */
export class VirtualList {
  constructor(viewport, rowHeight, renderRow) {
    this.viewport = viewport;
    this.rowHeight = rowHeight;
    this.renderRow = renderRow;
    this.rows = [];
    this.spacer = document.createElement("div");
    this.spacer.className = "spacer";
    this.layer = document.createElement("div");
    this.layer.className = "rows";
    viewport.append(this.spacer, this.layer);
    this.pool = [];
    this.scheduled = false;
    viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  /** Show these rows (the viewport keeps its scroll position). */
  setRows(rows) {
    this.rows = rows;
    this.spacer.style.height = `${rows.length * this.rowHeight}px`;
    this.draw();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  /** Draw the rows in view now. */
  draw() {
    const height = this.viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / this.rowHeight) - 5);
    const last = Math.min(this.rows.length, Math.ceil((this.viewport.scrollTop + height) / this.rowHeight) + 5);
    const needed = Math.max(0, last - first);
    while (this.pool.length < needed) {
      const element = document.createElement("div");
      element.className = "row";
      element.setAttribute("role", "row");
      this.layer.append(element);
      this.pool.push(element);
    }
    for (let i = 0; i < this.pool.length; i += 1) {
      const element = this.pool[i];
      if (i >= needed) {
        element.hidden = true;
        continue;
      }
      const row = this.rows[first + i];
      element.hidden = false;
      element.style.transform = `translateY(${(first + i) * this.rowHeight}px)`;
      this.renderRow(row, element);
    }
  }

  /** Scroll so that the row at `index` is in view. */
  reveal(index) {
    const top = index * this.rowHeight;
    const view = this.viewport;
    if (top < view.scrollTop || top + this.rowHeight > view.scrollTop + view.clientHeight) {
      view.scrollTop = Math.max(0, top - view.clientHeight / 2);
    }
    this.draw();
  }
}
