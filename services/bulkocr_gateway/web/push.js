// A finished job pushed into Archipelago: the button, and the push's state and links as the
// status's `archipelago_result` tells them.
import { api } from "./api.js";
import { $, el } from "./dom.js";

let jobId = null;
let onQueued = () => {};

function outLink(text, url) {
  const anchor = el("a", text);
  anchor.href = url;
  anchor.target = "_blank";
  anchor.rel = "noopener";
  return anchor;
}

// `queued()` runs once a push is asked for, so the job page follows it.
export function showArchipelago(status, finished, queued) {
  jobId = status.job_id;
  onQueued = queued;
  const result = status.archipelago_result;
  const pushable = finished && status.status !== "cancelled";
  $("push").hidden = !pushable;
  $("push").textContent = result ? "Push again" : "Push to Archipelago";
  $("push-section").hidden = !pushable && !result;
  const state = $("push-state");
  state.replaceChildren();
  if (!result) return;
  const d = result.documents;
  state.append(el("p", `${result.status} · ${result.mode} · ${d.completed} of ${d.total} objects done`
    + `${d.failed ? `, ${d.failed} failed` : ""}${d.skipped ? `, ${d.skipped} skipped (no text)` : ""}`
    + ` · attempt ${result.attempts}`, `status ${result.status}`));
  if (result.last_error) state.append(el("p", result.last_error, "error"));
  const links = el("p");
  if (result.collection) links.append(outLink("collection", result.collection.url), " ");
  if (result.ami_set) links.append(outLink("AMI set", result.ami_set.url));
  state.append(links);
  const objects = el("ul");
  for (const object of result.objects) {
    const item = el("li");
    item.append(outLink(object.filename || object.doc_id, object.url), el("span", ` ${object.state}`, "muted"));
    if (object.error) item.append(el("span", ` ${object.error}`, "error"));
    objects.append(item);
  }
  state.append(objects);
}

$("push").addEventListener("click", async () => {
  $("push-message").textContent = "Queueing the push…";
  try {
    await api("/api/archipelago/push-bulk-ami", { method: "POST", json: { job_id: jobId } });
    $("push-message").textContent = "Push queued: its state shows below as it moves.";
    onQueued();
  } catch (error) {
    $("push-message").textContent = `Not pushed: ${error.message}`;
  }
});
