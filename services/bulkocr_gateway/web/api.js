// Requests to the gateway with the signed-in token. The token lives in sessionStorage (gone
// when the tab closes) and travels only in the Authorization header, never in a URL.

const KEY = "bulkocr-token";

export const session = {
  token: () => sessionStorage.getItem(KEY),
  signIn: (token) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.removeItem(KEY),
  // Called when the gateway no longer accepts the token (main.js signs out).
  onRefused: () => {},
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function authorization() {
  return { Authorization: `Bearer ${session.token()}` };
}

export async function api(path, { method = "GET", json, signal, headers = {} } = {}) {
  const options = { method, signal, headers: { ...authorization(), ...headers } };
  if (json !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  }
  const response = await fetch(path, options);
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    if (response.status === 401) session.onRefused();
    throw new ApiError(response.status, body.error || `${response.status} ${response.statusText}`);
  }
  return response;
}

export async function getJSON(path, options) {
  return (await api(path, options)).json();
}

// A file the gateway serves, saved by the browser: fetched with the token, then handed over
// as an object URL (a plain link could not send the header).
export async function download(path, fallbackName) {
  const response = await api(path);
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const url = URL.createObjectURL(await response.blob());
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = named ? named[1] : fallbackName;
  anchor.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// An upload with progress: fetch reports none for a request body, XMLHttpRequest does.
// Calls `onProgress(loaded, total)` as it goes and `onDone({status, body})` once; returns the
// request, to abort it.
export function upload(form, onProgress, onDone) {
  const request = new XMLHttpRequest();
  request.open("POST", "/api/bulk/jobs");
  request.setRequestHeader("Authorization", authorization().Authorization);
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) onProgress(event.loaded, event.total);
  });
  request.addEventListener("load", () => {
    let body = {};
    try { body = JSON.parse(request.responseText || "{}"); } catch { body = { error: request.statusText }; }
    if (request.status === 401) session.onRefused();
    onDone({ status: request.status, body });
  });
  request.addEventListener("error", () => onDone({ status: 0, body: { error: "no answer from the gateway" } }));
  request.addEventListener("abort", () => onDone({ status: 0, body: { error: "upload cancelled" } }));
  request.send(form);
  return request;
}
