// The web app's entry: sign in and out, and the views by the address's #fragment, so the
// browser's back button and a reload keep the place (ids only; the token never goes there).
//   #/                                         upload and the job list
//   #/jobs/{job}                               a job, live
//   #/jobs/{job}/quality[/{n}]                 its pages worst first
//   #/jobs/{job}/documents/{doc}/pages/{n}     the page viewer
import { ApiError, getJSON, session } from "./api.js";
import { $ } from "./dom.js";
import { showJob, stopJob } from "./job.js";
import { showJobs, stopJobs } from "./jobs.js";
import { showQuality } from "./quality.js";
import { setUpUpload } from "./upload.js";
import { closeViewer, showPage } from "./viewer.js";

const VIEWS = ["home", "job", "quality", "viewer"];

function show(view) {
  $("sign-in").hidden = view !== "sign-in";
  for (const name of VIEWS) $(name).hidden = name !== view;
  $("signed-in").hidden = view === "sign-in";
}

function leave() {
  stopJobs();
  stopJob();
  closeViewer();
}

async function route() {
  leave();
  $("problem").textContent = "";
  if (!session.token()) {
    show("sign-in");
    $("token").focus();
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "jobs" && parts[1] && parts[2] === "documents" && parts[4] === "pages") {
      show("viewer");
      await showPage(parts[1], parts[3], Number(parts[5]) || 1);
    } else if (parts[0] === "jobs" && parts[1] && parts[2] === "quality") {
      show("quality");
      await showQuality(parts[1], Number(parts[3]) || 1);
    } else if (parts[0] === "jobs" && parts[1]) {
      show("job");
      await showJob(parts[1]);
    } else {
      show("home");
      await showJobs(1);
    }
  } catch (error) {
    $("problem").textContent = error.message;
  }
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  session.signIn(token);
  try {
    await getJSON("/api/bulk/jobs?per_page=1");  // a token the gateway refuses is not kept
  } catch (error) {
    session.signOut();
    $("sign-in-error").textContent = error instanceof ApiError && error.status === 401
      ? "The gateway does not know this token." : `Cannot sign in: ${error.message}`;
    return;
  }
  $("token").value = "";
  $("sign-in-error").textContent = "";
  route();
}

function signOut(reason) {
  session.signOut();
  $("sign-in-error").textContent = reason || "";
  route();
}

// The first page kept the token in localStorage, where it outlived the tab: drop it.
localStorage.removeItem("bulkocr-token");
session.onRefused = () => signOut("The gateway no longer accepts this token: sign in again.");
$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
setUpUpload(() => showJobs(1).catch((error) => { $("problem").textContent = error.message; }));
route();
