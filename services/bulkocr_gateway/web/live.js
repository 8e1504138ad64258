// Following a job as it runs. The gateway's event stream (GET .../events, server-sent events)
// when it answers one; else, or once it fails, the status route every 2 s. EventSource cannot
// send an Authorization header, so the stream is read with fetch and parsed here.
import { api, getJSON } from "./api.js";
import { FINISHED } from "./jobs.js";

const POLL_MS = 2000;
const PUSHING = new Set(["queued", "uploading"]);  // a push to Archipelago still moving
const REREAD_MS = 10_000;  // while streaming, the status (ETA, documents) is read again at most this often

// `onStatus(status)` gets the status route's body whenever it changes; `onMode("live" |
// "polling")` says how. Returns a function that stops following.
export function follow(jobId, onStatus, onMode) {
  const controller = new AbortController();
  const signal = controller.signal;
  let current = null, lastRead = 0, timer = null, rereading = null;

  const update = (status) => { current = status; onStatus(status); };

  async function read() {
    lastRead = Date.now();
    update(await getJSON(`/api/bulk/status/${jobId}`, { signal }));
  }

  async function poll() {
    try {
      await read();
      if (FINISHED.has(current.status) && !PUSHING.has(current.archipelago_result?.status)) return;
    } catch (error) {
      if (signal.aborted || error.status === 404 || error.status === 401) return;  // gone, or signed out
    }
    timer = setTimeout(poll, POLL_MS);
  }

  function rereadSoon() {
    if (rereading || signal.aborted) return;
    rereading = setTimeout(() => { rereading = null; read().catch(() => {}); }, 300);
  }

  function handle({ event, data }) {
    const body = JSON.parse(data || "{}");
    if (event === "snapshot") {
      lastRead = Date.now();
      update(body);
    } else if (event === "progress" && current) {
      update(withProgress(current, body));
      if (Date.now() - lastRead > REREAD_MS) rereadSoon();
    } else {
      // page, document, job and any kind added later: what they change (documents, failed
      // pages, outputs, a push) is in the status, read once for a burst of them.
      rereadSoon();
    }
  }

  async function stream() {
    try {
      const response = await api(`/api/bulk/jobs/${jobId}/events`, { signal, headers: { Accept: "text/event-stream" } });
      if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) throw new Error("no stream");
      onMode("live");
      for await (const message of serverSentEvents(response.body, signal)) handle(message);
    } catch (error) {
      if (signal.aborted) return;
    }
    if (signal.aborted) return;
    // The stream ended (the job did, or the connection broke) or never began: poll, which
    // reads the final state once and stops when the job has finished (and any push has).
    onMode("polling");
    poll();
  }

  stream();
  return () => { controller.abort(); clearTimeout(timer); clearTimeout(rereading); };
}

// A `progress` event's counts applied to the last status (it carries no documents or ETA).
function withProgress(status, event) {
  const total = event.pages_total ?? status.progress.pages_total;
  const done = event.pages_done ?? status.progress.pages_done;
  const failed = event.pages_failed ?? status.progress.pages_failed;
  const finished = FINISHED.has(event.status);
  const percent = finished ? 100 : total ? Math.min(100, Math.round((1000 * (done + failed)) / total) / 10) : 0;
  const nodes = { ...status.nodes };
  for (const [node, tally] of Object.entries(event.nodes || {})) nodes[node] = { ...nodes[node], ...tally };
  return {
    ...status,
    status: event.status || status.status,
    progress: { pages_total: total, pages_done: done, pages_failed: failed, percent },
    documents_by_status: event.documents_by_status || status.documents_by_status,
    nodes,
  };
}

// Server-sent events from a response body: {event, data} per blank-line-ended message;
// comment lines (": keep-alive") are skipped. Lines end with \n or \r\n (a lone \r, which
// the format also allows, is not sent by this gateway).
export async function* serverSentEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "", event = "message", data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || signal.aborted) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (data.length) yield { event, data: data.join("\n") };
          event = "message";
          data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = text;
          else if (field === "data") data.push(text);
        }
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
