// The job list, newest first, a page at a time; read again while a job on it is running.
import { getJSON } from "./api.js";
import { $, el, emptyRow, link, progressBar, row, when } from "./dom.js";

export const FINISHED = new Set(["completed", "partial", "failed", "cancelled"]);
const PER_PAGE = 20;
const REFRESH_MS = 3000;
let timer = null;
let shown = 1;

export function stopJobs() {
  clearTimeout(timer);
  timer = null;
}

export async function showJobs(page) {
  stopJobs();
  shown = page;
  const list = await getJSON(`/api/bulk/jobs?page=${page}&per_page=${PER_PAGE}`);
  const body = $("jobs");
  body.replaceChildren();
  if (!list.jobs.length) body.append(emptyRow("No jobs yet: upload some scans above.", 5));
  for (const job of list.jobs) body.append(jobRow(job));
  const pages = Math.max(1, Math.ceil(list.total / list.per_page));
  $("jobs-page").textContent = `${list.total} job${list.total === 1 ? "" : "s"} · page ${page} of ${pages}`;
  $("jobs-prev").disabled = !list.prev_url;
  $("jobs-next").disabled = !list.next_url;
  if (list.jobs.some((job) => !FINISHED.has(job.status)) && !$("home").hidden) {
    timer = setTimeout(() => showJobs(shown).catch(() => {}), REFRESH_MS);
  }
}

function jobRow(job) {
  const p = job.progress;
  const progress = el("div");
  progress.append(progressBar(p.percent, job.status),
    el("span", `${p.pages_done}/${p.pages_total} pages${p.pages_failed ? ` · ${p.pages_failed} failed` : ""}`, "muted"));
  const tr = row(link(job.job_id.slice(0, 12), `#/jobs/${job.job_id}`), when(job.created_at),
    el("span", job.status, `status ${job.status}`), String(job.documents_total), progress);
  tr.dataset.job = job.job_id;
  return tr;
}

$("jobs-prev").addEventListener("click", () => showJobs(Math.max(1, shown - 1)));
$("jobs-next").addEventListener("click", () => showJobs(shown + 1));
