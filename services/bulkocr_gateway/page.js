// The web page's code (index.html). A file, not an inline <script>, so the gateway's
// Content-Security-Policy can allow scripts from 'self' only.
"use strict";
const $ = (id) => document.getElementById(id);
const FINISHED = new Set(["completed", "partial", "failed", "cancelled"]);
const rows = new Map();  // job id -> {row, timer}
let opened = null;

$("token").value = localStorage.getItem("bulkocr-token") || "";
$("token").addEventListener("change", () => { localStorage.setItem("bulkocr-token", $("token").value.trim()); refresh(); });

function auth() { return { Authorization: "Bearer " + $("token").value.trim() }; }

async function api(path) {
  const response = await fetch(path, { headers: auth() });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || response.statusText);
  }
  return response;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function progressCell(job) {
  const cell = el("td");
  const bar = el("div", undefined, "bar"), fill = el("div");
  fill.style.width = job.progress.percent + "%";
  bar.append(fill);
  const p = job.progress;
  const eta = job.eta_seconds ? ` · about ${Math.ceil(job.eta_seconds)} s left` : "";
  cell.append(bar, el("div", `${p.pages_done}/${p.pages_total} pages · ${p.pages_failed} failed${eta}`, "muted"));
  return cell;
}

function render(job) {
  const row = el("tr");
  row.className = job.status;
  row.append(el("td", job.job_id.slice(0, 12)), el("td", new Date(job.created_at).toLocaleString(), "muted"),
             el("td", job.status), progressCell(job));
  const open = el("button", "documents", "link");
  open.onclick = () => showDocuments(job.job_id, row);
  const actions = el("td"); actions.append(open); row.append(actions);
  const known = rows.get(job.job_id);
  if (known) known.row.replaceWith(row); else $("jobs").append(row);
  rows.set(job.job_id, { row, timer: known ? known.timer : null });
  if (!FINISHED.has(job.status)) poll(job.job_id);
}

function poll(jobId) {
  const entry = rows.get(jobId);
  if (!entry || entry.timer) return;
  entry.timer = setTimeout(async () => {
    entry.timer = null;
    try { render(await (await api(`/api/bulk/status/${jobId}`)).json()); } catch (e) { poll(jobId); }
  }, 1500);
}

async function refresh() {
  rows.forEach((entry) => clearTimeout(entry.timer));
  rows.clear();
  $("jobs").replaceChildren();
  try {
    const list = await (await api("/api/bulk/jobs?per_page=20")).json();
    $("who").textContent = `${list.total} job(s)`;
    if (!list.jobs.length) {
      const empty = el("tr"); empty.append(el("td", "No jobs yet.", "muted")); $("jobs").append(empty);
    }
    list.jobs.forEach((summary) => render({ ...summary, eta_seconds: null }));
  } catch (error) {
    $("who").textContent = error.message;
  }
}

async function download(jobId, doc, kind) {
  const blob = await (await api(`/api/bulk/jobs/${jobId}/documents/${doc.doc_id}/${kind}`)).blob();
  const link = el("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${(doc.filename || doc.doc_id).split("/").pop()}.${kind === "text" ? "txt" : "json"}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function showDocuments(jobId, row) {
  if (opened) opened.remove();
  const job = await (await api(`/api/bulk/status/${jobId}`)).json();
  const cell = el("td"); cell.colSpan = 5;
  for (const doc of job.documents) {
    const line = el("div");
    line.append(el("code", doc.filename || doc.doc_id), el("span", ` ${doc.pages ?? "?"} pages · ${doc.status} `, "muted"));
    if (doc.error) line.append(el("span", doc.error, "error"));
    for (const kind of ["text", "json"]) {
      const button = el("button", kind, "link");
      button.onclick = () => download(jobId, doc, kind).catch((e) => alert(e.message));
      line.append(button);
    }
    cell.append(line);
  }
  opened = el("tr"); opened.append(cell);
  (rows.get(jobId)?.row || row).after(opened);
}

$("upload").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData();
  for (const file of $("files").files) form.append("files", file, file.name);
  form.append("engine", $("engine").value);
  form.append("dpi", $("dpi").value);
  if ($("language").value.trim()) form.append("language", $("language").value.trim());
  const request = new XMLHttpRequest();
  request.open("POST", "/api/bulk/jobs");
  request.setRequestHeader("Authorization", auth().Authorization);
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) $("sending").textContent = `Uploading… ${Math.round(100 * e.loaded / e.total)}%`;
  };
  request.onload = () => {
    const body = JSON.parse(request.responseText || "{}");
    $("sending").textContent = request.status === 202 ? `Job ${body.job_id} queued.` : `Refused: ${body.error}`;
    $("sending").className = request.status === 202 ? "muted" : "error";
    if (request.status === 202) { $("upload").reset(); refresh(); }
  };
  request.onerror = () => { $("sending").textContent = "Upload failed: no answer from the gateway."; };
  request.send(form);
});

if ($("token").value) refresh();
