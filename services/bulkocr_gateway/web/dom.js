// Small helpers to build the page from data. Text always goes in as textContent, never as
// HTML, so a file name or an OCR'd word cannot become markup.

export const $ = (id) => document.getElementById(id);

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

export function link(text, href, className) {
  const node = el("a", text, className);
  node.href = href;
  return node;
}

export function button(text, onClick, className) {
  const node = el("button", text, className);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

export function row(...cells) {
  const tr = el("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? wrap("td", cell) : el("td", cell));
  return tr;
}

// A row with one cell across the table, saying there is nothing (yet).
export function emptyRow(text, columns) {
  const cell = el("td", text, "muted");
  cell.colSpan = columns;
  const tr = el("tr");
  tr.append(cell);
  return tr;
}

function wrap(tag, child) {
  const node = el(tag);
  node.append(child);
  return node;
}

export function progressBar(percent, status) {
  const bar = el("div", undefined, `bar ${status || ""}`);
  const fill = el("div");
  fill.style.width = `${Math.max(0, Math.min(100, percent))}%`;  // CSSOM, allowed by style-src 'self'
  bar.append(fill);
  return bar;
}

export function bytes(size) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = size, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function duration(seconds) {
  if (seconds < 90) return `${Math.ceil(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// The shown confidence of a word or page: two decimals, or a dash when there is none.
export function confidence(value) {
  return value === null || value === undefined ? "–" : value.toFixed(2);
}
