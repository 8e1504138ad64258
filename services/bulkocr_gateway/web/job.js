// One job: its progress live, documents with their downloads, failed pages and their causes,
// the nodes reading it, and what can be done with it (cancel, retry, bundle, Archipelago).
import { api, download, getJSON } from "./api.js";
import { $, button, duration, el, emptyRow, link, progressBar, row, when } from "./dom.js";
import { FINISHED } from "./jobs.js";
import { follow } from "./live.js";
import { showArchipelago } from "./push.js";

const DOCUMENT_FORMATS = ["txt", "json", "pdf", "hocr", "alto", "miniocr"];
const PER_PAGE = 50;
let job = null;  // {id, stop, documentsPage, documentsSeen}

export function stopJob() {
  job?.stop();
  job = null;
}

export async function showJob(jobId) {
  stopJob();
  const current = { id: jobId, stop: () => {}, documentsPage: 1, documentsSeen: null };
  job = current;
  $("job-id").textContent = jobId;
  $("job-quality").href = `#/jobs/${jobId}/quality`;
  $("job-message").textContent = "";
  $("failed-pages").replaceChildren();
  const status = await getJSON(`/api/bulk/status/${jobId}`);  // a 404 shows before anything else
  if (job !== current) return;  // left meanwhile
  render(status);
  startFollowing();
}

function startFollowing() {
  const current = job;
  current.stop();
  current.stop = follow(current.id, (status) => { if (job === current) render(status); },
    (mode) => { $("job-mode").textContent = mode === "live" ? "live" : "updated every 2 s"; });
}

function render(status) {
  const p = status.progress;
  const finished = FINISHED.has(status.status);
  $("job-status").textContent = status.status;
  $("job-status").className = `status ${status.status}`;
  $("job-bar").replaceChildren(progressBar(p.percent, status.status));
  const eta = !finished && status.eta_seconds ? ` · about ${duration(status.eta_seconds)} left` : "";
  $("job-progress").textContent =
    `${p.pages_done} of ${p.pages_total} pages read · ${p.pages_failed} failed · ${p.percent}%${eta}`;
  $("job-documents-count").textContent = Object.entries(status.documents_by_status)
    .map(([state, n]) => `${n} ${state}`).join(" · ");
  $("job-cancel").hidden = finished;
  $("job-retry").hidden = !finished || status.status === "cancelled" || !p.pages_failed;
  $("job-mode").hidden = finished;
  renderNodes(status.nodes);
  renderFailed(status);
  showArchipelago(status, finished, startFollowing);
  // The documents are read again only when their counts moved (or the job ended).
  const seen = JSON.stringify([status.status, status.documents_by_status]);
  if (seen !== job.documentsSeen) {
    job.documentsSeen = seen;
    showDocuments(job.documentsPage).catch((error) => { $("job-message").textContent = error.message; });
  }
}

function renderNodes(nodes) {
  const entries = Object.entries(nodes).sort(([a], [b]) => a.localeCompare(b));
  $("nodes").replaceChildren(...entries.map(([node, tally]) => row(node, String(tally.pages_done),
    String(tally.pages_failed), `${Math.round(tally.busy_seconds)} s`, when(tally.last_seen))));
  if (!entries.length) $("nodes").append(emptyRow("No node has read a page of this job yet.", 5));
}

async function showDocuments(page) {
  const current = job;
  const list = await getJSON(`/api/bulk/jobs/${current.id}/documents?page=${page}&per_page=${PER_PAGE}`);
  if (job !== current) return;
  current.documentsPage = page;
  $("documents").replaceChildren(...list.documents.map((doc) => documentRow(current.id, doc)));
  const pages = Math.max(1, Math.ceil(list.total / list.per_page));
  $("documents-page").textContent = `page ${page} of ${pages}`;
  $("documents-prev").disabled = !list.prev_url;
  $("documents-next").disabled = !list.next_url;
}

function documentRow(jobId, doc) {
  const name = doc.filename || doc.doc_id;
  const downloads = el("span", undefined, "downloads");
  for (const format of DOCUMENT_FORMATS) {
    const base = name.split("/").pop();
    downloads.append(button(format, () => save(`/api/bulk/jobs/${jobId}/documents/${doc.doc_id}/${format}`,
      `${base}.${format}`), "link"));
  }
  const view = doc.pages ? link("view", `#/jobs/${jobId}/documents/${doc.doc_id}/pages/1`) : el("span");
  const state = el("span");
  state.append(el("span", doc.status, `status ${doc.status}`));
  if (doc.error) state.append(el("span", ` ${doc.error}`, "error"));
  if (doc.duplicate_of) state.append(el("span", ` same file as ${doc.duplicate_of}`, "muted"));
  const tr = row(name, String(doc.pages ?? "?"), state, downloads, view);
  tr.dataset.doc = doc.doc_id;
  return tr;
}

function renderFailed(status) {
  const list = $("failed");
  const docs = status.failed_documents;
  $("failed-section").hidden = !docs.length && !status.progress.pages_failed;
  list.replaceChildren(...docs.map((doc) => {
    const item = el("li");
    item.append(el("code", doc.filename || doc.doc_id), el("span", ` ${doc.status}`, `status ${doc.status}`));
    if (doc.error) item.append(el("span", ` ${doc.error}`, "error"));
    if (doc.pages) item.append(" ", button("failed pages", () => showFailedPages(status.job_id, doc), "link"));
    return item;
  }));
  const more = status.failed_documents_total - docs.length;
  if (more > 0) list.append(el("li", `… and ${more} more`, "muted"));
}

// Reads the document's pages once, on request: it can be long.
async function showFailedPages(jobId, doc) {
  const result = await getJSON(`/api/bulk/jobs/${jobId}/documents/${doc.doc_id}/json`);
  const failed = result.pages.filter((page) => page.status === "failed");
  const list = el("ul");
  for (const page of failed) {
    const item = el("li", `${doc.filename || doc.doc_id}, page ${page.page}: ${page.error || "failed"} `);
    item.append(link("view", `#/jobs/${jobId}/documents/${doc.doc_id}/pages/${page.page}`));
    list.append(item);
  }
  if (!failed.length) list.append(el("li", "No page of it failed (the document itself did).", "muted"));
  $("failed-pages").replaceChildren(list);
}

async function control(action, done) {
  try {
    const response = await (await api(`/api/bulk/jobs/${job.id}/${action}`, { method: "POST" })).json();
    $("job-message").textContent = done(response);
    startFollowing();
  } catch (error) {
    $("job-message").textContent = error.message;
  }
}

function save(path, name) {
  download(path, name).catch((error) => { $("job-message").textContent = `Download failed: ${error.message}`; });
}

$("job-cancel").addEventListener("click", () => {
  if (window.confirm("Cancel this job? Pages not read yet will not be read.")) control("cancel", () => "Cancelling…");
});
$("job-retry").addEventListener("click", () =>
  control("retry-failed", (body) => `Reading ${body.pages_failed} failed page(s) again…`));
$("documents-prev").addEventListener("click", () => showDocuments(Math.max(1, job.documentsPage - 1)));
$("documents-next").addEventListener("click", () => showDocuments(job.documentsPage + 1));
$("bundle").addEventListener("click", () => {
  const formats = [...document.querySelectorAll("input[name=bundle-format]:checked")].map((box) => box.value);
  save(`/api/bulk/jobs/${job.id}/bundle.zip${formats.length ? `?formats=${formats.join(",")}` : ""}`, `${job.id}.zip`);
});
