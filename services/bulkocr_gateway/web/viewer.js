// The page viewer: the page's image with the recognised words' boxes over it, the text beside
// it, doubtful words marked in both, and the previous and next page of the document.
//
// The image is the page as ingest rendered it (source orientation); the boxes are in the
// upright page that OCR read after turning the image `rotation` degrees clockwise. So the
// image is drawn turned the same way, in an SVG whose coordinates are the upright page's.
import { ApiError, api, getJSON } from "./api.js";
import { $, confidence, el, svg } from "./dom.js";

const DOUBTFUL_BELOW = 0.8;  // the gateway's threshold until its quality route says otherwise
const thresholds = new Map();  // job id -> doubtful_below
let shown = null;  // {jobId, docId, number, count, url}

export function closeViewer() {
  if (shown?.url) URL.revokeObjectURL(shown.url);
  shown = null;
  $("viewer-scan").replaceChildren();
  $("viewer-text").replaceChildren();
}

export async function showPage(jobId, docId, number) {
  closeViewer();
  const current = { jobId, docId, number, count: number, url: null };
  shown = current;
  $("viewer-back").href = `#/jobs/${jobId}`;
  $("viewer-quality").href = `#/jobs/${jobId}/quality`;
  $("viewer-title").textContent = `${docId} · page ${number}`;
  $("viewer-summary").textContent = "Loading…";
  const loading = pageImage(jobId, docId, number);  // never rejects: it says why there is no image
  let result, below;
  try {
    [result, below] = await Promise.all([
      getJSON(`/api/bulk/jobs/${jobId}/documents/${docId}/json?page=${number}`),
      doubtfulBelow(jobId),
    ]);
  } catch (error) {
    loading.then((image) => image.url && URL.revokeObjectURL(image.url));
    throw error;
  }
  const image = await loading;
  if (shown !== current) {  // another page was asked for meanwhile
    if (image.url) URL.revokeObjectURL(image.url);
    return;
  }
  current.url = image.url;
  current.count = result.page_count;
  const page = result.pages[0];
  $("viewer-title").textContent = `${result.filename || docId} · page ${number} of ${result.page_count}`;
  $("viewer-prev").disabled = number <= 1;
  $("viewer-next").disabled = number >= result.page_count;
  $("viewer-scan").replaceChildren(drawing(page, image, below));
  $("viewer-text").replaceChildren(...textOf(page, below));
  $("viewer-summary").textContent = summary(page, image, below);
}

// The image fetched with the token (an <img src> could not send it), as an object URL with
// its size; or why there is none.
async function pageImage(jobId, docId, number) {
  try {
    const response = await api(`/api/bulk/jobs/${jobId}/documents/${docId}/pages/${number}/image`);
    const url = URL.createObjectURL(await response.blob());
    const probe = new Image();
    probe.src = url;
    await probe.decode();
    return { url, width: probe.naturalWidth, height: probe.naturalHeight };
  } catch (error) {
    return { url: null, problem: error instanceof ApiError ? error.message : "the image could not be shown" };
  }
}

async function doubtfulBelow(jobId) {
  if (!thresholds.has(jobId)) {
    const quality = await getJSON(`/api/bulk/jobs/${jobId}/quality?per_page=1`).catch(() => null);
    thresholds.set(jobId, quality?.doubtful_below ?? DOUBTFUL_BELOW);
  }
  return thresholds.get(jobId);
}

// Words in reading order; a line an engine gave no word boxes for stands as one word.
function wordsOf(page) {
  return (page.blocks || []).map((block) => block.lines.map((line) => (line.words.length ? line.words : [line])));
}

// Clockwise turns that take the source image into the upright page of width w, height h.
function turn(rotation, w, h) {
  return { 0: "", 90: `translate(${w} 0) rotate(90)`, 180: `translate(${w} ${h}) rotate(180)`,
    270: `translate(0 ${h}) rotate(270)` }[rotation];
}

function drawing(page, image, below) {
  const upright = Boolean(page.width && page.height);
  const w = upright ? page.width : image.width || 1, h = upright ? page.height : image.height || 1;
  const rotation = upright ? (((page.rotation || 0) % 360) + 360) % 360 : 0;
  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "page", role: "img" });
  if (image.url) {
    const sideways = rotation === 90 || rotation === 270;
    root.append(svg("image", { href: image.url, x: 0, y: 0, width: sideways ? h : w, height: sideways ? w : h,
      preserveAspectRatio: "none", transform: turn(rotation, w, h) || "" }));
  }
  let index = 0;
  for (const lines of wordsOf(page)) {
    for (const words of lines) {
      for (const word of words) {
        const { x0, y0, x1, y1 } = word.box;
        const rect = svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0,
          class: word.confidence < below ? "word doubtful" : "word", "data-word": index++ });
        rect.append(svg("title"));
        rect.firstChild.textContent = `${word.text} (${confidence(word.confidence)})`;
        root.append(rect);
      }
    }
  }
  return root;
}

function textOf(page, below) {
  if (page.status !== "done") return [el("p", `This page is ${page.status}${page.error ? `: ${page.error}` : ""}.`, "muted")];
  let index = 0;
  const blocks = wordsOf(page).map((lines) => {
    const block = el("div", undefined, "block");
    for (const words of lines) {
      const line = el("p");
      words.forEach((word, position) => {
        if (position) line.append(" ");
        const span = el("span", word.text, word.confidence < below ? "doubtful" : undefined);
        span.dataset.word = index++;
        span.title = `confidence ${confidence(word.confidence)}`;
        line.append(span);
      });
      block.append(line);
    }
    return block;
  });
  return blocks.length ? blocks : [el("p", "No text was found on this page.", "muted")];
}

function summary(page, image, below) {
  const parts = [];
  if (!image.url) parts.push(`No image: ${image.problem}`);
  const q = page.quality;
  if (page.rotation) parts.push(`turned ${page.rotation}° clockwise to read`);
  if (q) {
    parts.push(`${q.words} words`, `${q.doubtful_words} doubtful (confidence under ${below})`);
    parts.push(`mean confidence ${confidence(q.mean_confidence)}`);
    if (q.blank) parts.push("blank");
  }
  return parts.join(" · ") || `This page is ${page.status}.`;
}

function go(step) {
  if (!shown) return;
  const next = shown.number + step;
  if (next < 1 || next > shown.count) return;
  location.hash = `#/jobs/${shown.jobId}/documents/${shown.docId}/pages/${next}`;
}

// A word's box and its place in the text light up together.
function highlight(event, on) {
  const index = event.target.closest?.("[data-word]")?.getAttribute("data-word");
  if (index === undefined || index === null) return;
  for (const node of $("viewer").querySelectorAll(`[data-word="${index}"]`)) node.classList.toggle("hot", on);
}

$("viewer-prev").addEventListener("click", () => go(-1));
$("viewer-next").addEventListener("click", () => go(1));
$("viewer-boxes").addEventListener("change", (event) => $("viewer-scan").classList.toggle("no-boxes", !event.target.checked));
$("viewer").addEventListener("mouseover", (event) => highlight(event, true));
$("viewer").addEventListener("mouseout", (event) => highlight(event, false));
document.addEventListener("keydown", (event) => {
  if ($("viewer").hidden || event.target.closest("input, select, textarea")) return;
  if (event.key === "ArrowLeft") go(-1);
  if (event.key === "ArrowRight") go(1);
});
