// A job's pages worst first (blank, then lowest mean word confidence), so a curator checks
// those before signing off a batch; each row opens the page in the viewer.
import { getJSON } from "./api.js";
import { $, confidence, el, emptyRow, link, row } from "./dom.js";

const PER_PAGE = 25;
let shown = null;  // {jobId, page}

export async function showQuality(jobId, page) {
  shown = { jobId, page };
  $("quality-job").textContent = jobId;
  $("quality-back").href = `#/jobs/${jobId}`;
  const [view, status] = await Promise.all([
    getJSON(`/api/bulk/jobs/${jobId}/quality?page=${page}&per_page=${PER_PAGE}`),
    getJSON(`/api/bulk/status/${jobId}`),  // the names of its first documents
  ]);
  const names = new Map([...status.documents, ...status.failed_documents].map((doc) => [doc.doc_id, doc.filename]));
  $("quality-note").textContent = `${view.total} pages read, ${view.pages_failed} failed. A word read with`
    + ` confidence under ${view.doubtful_below} is doubtful.`;
  $("quality-pages").replaceChildren(...view.pages.map((entry) => {
    const q = entry.quality || {};
    const where = `#/jobs/${jobId}/documents/${entry.doc_id}/pages/${entry.page}`;
    const tr = row(link(names.get(entry.doc_id) || entry.doc_id, where), String(entry.page),
      q.blank ? el("span", "blank", "error") : "", String(q.words ?? "–"), confidence(q.mean_confidence),
      confidence(q.low_confidence), String(q.doubtful_words ?? "–"), q.rotation ? `${q.rotation}°` : "0°");
    tr.className = "opens";
    tr.addEventListener("click", (event) => { if (!event.target.closest("a")) location.hash = where; });
    return tr;
  }));
  if (!view.pages.length) $("quality-pages").append(emptyRow("No page has been read yet.", 8));
  const pages = Math.max(1, Math.ceil(view.total / view.per_page));
  $("quality-page").textContent = `page ${page} of ${pages}`;
  $("quality-prev").disabled = page <= 1;
  $("quality-next").disabled = !view.next_url;
}

const turnTo = (step) => { location.hash = `#/jobs/${shown.jobId}/quality/${shown.page + step}`; };
$("quality-prev").addEventListener("click", () => turnTo(-1));
$("quality-next").addEventListener("click", () => turnTo(1));
