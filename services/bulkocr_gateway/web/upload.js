// Choosing scans (drag and drop of files and whole folders, or the pickers) and sending them
// as one job with its options, with the upload's progress.
import { upload } from "./api.js";
import { $, bytes, el, link } from "./dom.js";

const SHOWN = 8;
let chosen = [];  // [{file, path}]: path is the file's place in a dropped or picked folder
let sending = null;

// Hidden files (.DS_Store, ._scan.tif) are not scans; `bulkocr submit` leaves them out too.
const hidden = (path) => path.split("/").some((part) => part.startsWith("."));

function add(entries) {
  const known = new Set(chosen.map((entry) => entry.path));
  for (const entry of entries) {
    if (!hidden(entry.path) && !known.has(entry.path)) chosen.push(entry);
    known.add(entry.path);
  }
  chosen.sort((a, b) => a.path.localeCompare(b.path));
  render();
}

function render() {
  const list = $("chosen");
  list.replaceChildren(...chosen.slice(0, SHOWN).map((entry) => el("li", entry.path)));
  if (chosen.length > SHOWN) list.append(el("li", `… and ${chosen.length - SHOWN} more`, "muted"));
  const size = chosen.reduce((sum, entry) => sum + entry.file.size, 0);
  $("chosen-summary").textContent = chosen.length
    ? `${chosen.length} file${chosen.length === 1 ? "" : "s"} · ${bytes(size)}` : "No files chosen.";
  $("chosen-clear").hidden = !chosen.length;
  $("send").disabled = !chosen.length || sending !== null;
}

// A dropped folder is a tree of entries, read a batch at a time until a batch comes back empty.
async function filesUnder(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path: entry.fullPath.replace(/^\/+/, "") }];
  }
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return found;
    for (const child of batch) found.push(...await filesUnder(child));
  }
}

async function dropped(event) {
  event.preventDefault();
  $("drop").classList.remove("over");
  // The items are only readable during the event: take their entries before any await.
  const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) {
    add([...event.dataTransfer.files].map((file) => ({ file, path: file.name })));
    return;
  }
  try {
    for (const entry of entries) add(await filesUnder(entry));
  } catch (error) {
    say(`Could not read what was dropped: ${error.message}`, "error");
  }
}

function picked(input) {
  add([...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
  input.value = "";
}

function say(text, className = "muted") {
  const state = $("upload-state");
  state.replaceChildren(text);
  state.className = className;
  return state;
}

function form() {
  const data = new FormData();
  for (const { file, path } of chosen) data.append("files", file, path);
  for (const name of ["engine", "dpi", "language"]) {
    const value = $(name).value.trim();
    if (value) data.append(name, value);  // empty: the gateway's default
  }
  const formats = [...document.querySelectorAll("input[name=format]:checked")].map((box) => box.value);
  if (formats.length) data.append("formats", formats.join(","));
  return data;
}

function send(event, onQueued) {
  event.preventDefault();
  if (!chosen.length || sending) return;
  const progress = $("upload-progress");
  progress.value = 0;
  progress.hidden = false;
  $("upload-cancel").hidden = false;
  say("Uploading…");
  sending = upload(form(), (loaded, total) => {
    progress.value = Math.round((100 * loaded) / total);
    say(`Uploading… ${bytes(loaded)} of ${bytes(total)} (${progress.value}%)`);
  }, ({ status, body }) => {
    sending = null;
    progress.hidden = true;
    $("upload-cancel").hidden = true;
    if (status === 202) {
      const state = say(`Job ${body.job_id.slice(0, 12)} queued: `);
      state.append(link("follow it", `#/jobs/${body.job_id}`));
      chosen = [];
      onQueued(body.job_id);
    } else {
      say(`Not uploaded: ${body.error || `status ${status}`}`, "error");
    }
    render();
  });
  render();
}

export function setUpUpload(onQueued) {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", dropped);
  $("files").addEventListener("change", (event) => picked(event.target));
  $("folder").addEventListener("change", (event) => picked(event.target));
  $("chosen-clear").addEventListener("click", () => { chosen = []; render(); });
  $("upload-cancel").addEventListener("click", () => sending?.abort());
  $("upload-form").addEventListener("submit", (event) => send(event, onQueued));
  render();
}
