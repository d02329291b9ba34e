// reko video search: vanilla JS, no dependencies. Data from the API is only ever put into the
// page as text (textContent / text nodes) or as validated attribute values, never as HTML.
"use strict";

const BASE = location.pathname.replace(/\/[^/]*$/, "");  // "/reko"
const API = BASE + "/api";
const AIRFLOW = BASE.replace(/\/reko$/, "");  // Airflow's own root: "" unless served under a path
const NAV_ROUTE = "video-search";  // the plugin's url_route (reko_plugin.py): /plugin/video-search
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// --- icons: inline SVG, never font glyphs (a missing glyph shows as an empty box on phones) ----------
const SVG_NS = "http://www.w3.org/2000/svg";
const ICONS = {
  play: "M8 5v14l11-7z",
  pause: "M7 5h4v14H7zM13 5h4v14h-4z",
  prev: "M15.4 6.6 14 5.2 7.2 12l6.8 6.8 1.4-1.4L10 12z",
  next: "M8.6 6.6 10 5.2l6.8 6.8-6.8 6.8-1.4-1.4L14 12z",
  close: "M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z",
  external: "M14 4h6v6h-2V7.4l-7.3 7.3-1.4-1.4L16.6 6H14zM5 6h6v2H6v10h10v-5h2v6a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1z",
  link: "M3.9 12c0-1.71 1.39-3.1 3.1-3.1h4V7H7c-2.76 0-5 2.24-5 5s2.24 5 5 5h4v-1.9H7c-1.71 0-3.1-1.39-3.1-3.1zM8 13h8v-2H8v2zm9-6h-4v1.9h4c1.71 0 3.1 1.39 3.1 3.1s-1.39 3.1-3.1 3.1h-4V17h4c2.76 0 5-2.24 5-5s-2.24-5-5-5z",
  download: "M11 4h2v8.6l3.3-3.3 1.4 1.4L12 16.4l-5.7-5.7 1.4-1.4 3.3 3.3zM5 18h14v2H5z",
  video: "M4 6h11a1 1 0 0 1 1 1v3.5l4-3v9l-4-3V17a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1z",
};
function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "ico");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}
function setButton(button, name, label) {
  button.replaceChildren(icon(name), el("span", { class: "btn-label", text: label }));
}

// --- Airflow around the page ---------------------------------------------------------------------------
// Airflow 3 shows plugin views in an iframe sandboxed "allow-scripts allow-same-origin allow-forms
// allow-downloads": no allow-top-navigation, so target=_top does nothing, and no allow-popups. The
// frame is same-origin, so the page reaches the UI's window: links into Airflow are followed there,
// and the UI's address (which Airflow itself maps to and from the frame's on load) follows the page.
function airflowWindow() {
  try {
    const top = window.top;
    if (top !== window && top.location.origin === location.origin) return top;
  } catch { /* another origin: not Airflow's UI */ }
  return null;
}

function openInAirflow(href) {
  const top = airflowWindow();
  if (!top) { location.assign(href); return; }
  // A link of the UI's own document, clicked: the UI's window navigates itself, which its sandbox
  // does not restrict (the frame's own navigation of the top would be refused).
  const link = top.document.createElement("a");
  link.href = href;
  link.hidden = true;
  top.document.body.append(link);
  link.click();
  link.remove();
}

// A link to a page of Airflow's UI (path from Airflow's root, e.g. /dags/x/runs/y).
function airflowLink(path, text, title) {
  const href = AIRFLOW + path;
  return el("a", { href, title, class: "airflow-link", onclick: (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;  // new tab: the browser's
    e.preventDefault();
    openInAirflow(href);
  } }, text, icon("external"));
}

// The address that reopens this page, in this state, inside Airflow's UI.
function airflowAddress() {
  return new URL(`${AIRFLOW}/plugin/${NAV_ROUTE}${location.pathname}${location.search}`, location.origin).href;
}

// In Airflow's nav view the UI's address carries the page's (/plugin/video-search/reko/?view=…):
// kept in step with every search, so a reload, a bookmark or the copied address reopens it. A DAG's
// tab keeps the DAG's address. The UI's history entry (its router's state) is left as it is.
function syncAirflowAddress() {
  const top = airflowWindow();
  if (!top) return;
  const prefix = `${AIRFLOW}/plugin/${NAV_ROUTE}`;
  const path = top.location.pathname;
  if (path !== prefix && !path.startsWith(prefix + "/")) return;
  const want = prefix + location.pathname + location.search;
  if (path + top.location.search !== want) {
    try { top.history.replaceState(top.history.state, "", want); } catch { /* not ours to change */ }
  }
}

async function copyLink() {
  const url = airflowAddress();
  const out = $("share-url");
  out.value = url;
  $("share").hidden = false;
  let copied = false;
  try { await navigator.clipboard.writeText(url); copied = true; } catch { copied = false; }
  out.focus();
  out.select();
  setStatus($("share-status"), copied ? "Link copied: it opens this view inside Airflow." : "Copy this link: it opens this view inside Airflow.");
}

// Only our own media route (or a presigned https URL) may become an <img>/<video> source.
function safeMediaUrl(url) {
  if (typeof url !== "string") return null;
  if (url.startsWith(BASE + "/media/")) return url;
  try { return new URL(url).protocol === "https:" ? url : null; } catch { return null; }
}

async function api(path, options) {
  const resp = await fetch(API + path, { credentials: "same-origin", headers: { Accept: "application/json" }, ...options });
  let body = null;
  try { body = await resp.json(); } catch { body = null; }
  if (!resp.ok) {
    if (resp.status === 401) throw new Error("Your Airflow session has ended: sign in again.");
    const detail = body && body.detail;
    throw new Error(typeof detail === "string" ? detail : `Request failed (${resp.status})`);
  }
  return body;
}

function fmtTime(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
}
// Dates in the timezone Airflow's UI shows (the one its user picked, kept in the UI's localStorage
// under "timezone", shared with this same-origin page), else the browser's, as the UI does.
function airflowTimeZone() {
  let zone = null;
  try {
    const raw = localStorage.getItem("timezone");
    zone = raw ? JSON.parse(raw) : null;
  } catch { zone = null; }
  try { return new Intl.DateTimeFormat("en", { timeZone: zone || undefined }).resolvedOptions().timeZone; }
  catch { return Intl.DateTimeFormat().resolvedOptions().timeZone; }
}
function fmtDate(iso) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return "";
  const zone = airflowTimeZone();
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short" }).formatToParts(date).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${parts.timeZoneName}`;
}
const plural = (n, word, many) => `${fmtNum(n)} ${n === 1 ? word : (many || word + "s")}`;
const fmtNum = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString());

// A name for people: percent-escapes decoded where they are escapes ("50% off.mp4" is a name).
function decoded(part) { try { return decodeURIComponent(part); } catch { return part; } }
function uriParts(uri) {
  const parts = String(uri).replace(/\/+$/, "").split("/");
  return { name: decoded(parts.pop() || ""), folder: decoded(parts.pop() || "") };
}

// Every video seen, by file name, so that two "race.mp4" from different folders read apart.
const idsByName = new Map();
const videosById = new Map();
function noteVideo(video) {
  if (!video || !video.source_uri || !video.video_id) return;
  videosById.set(video.video_id, video);
  const { name, folder } = uriParts(video.source_uri);
  if (!idsByName.has(name)) idsByName.set(name, new Map());
  idsByName.get(name).set(video.video_id, folder);
}

// The file name; with its folder when another video has that name, or its id when both match.
function videoName(video, id) {
  if (!video || !video.source_uri) return id;
  const { name, folder } = uriParts(video.source_uri);
  const same = idsByName.get(name);
  if (!same || [...same.keys()].every((other) => other === id)) return name;
  const folderShared = [...same].some(([other, f]) => other !== id && f === folder);
  return folder && !folderShared ? `${folder}/${name}` : `${name} · ${id}`;
}

function setStatus(node, text, isError) {
  node.textContent = text || "";
  node.classList.toggle("error", !!isError);
}

// --- state in the URL, so a search can be shared and the Airflow UI keeps it -----------------
function params() { return new URLSearchParams(location.search); }
function go(view, values, replace) {
  const q = new URLSearchParams({ view, ...values });
  for (const [k, v] of [...q]) if (v === "" || v === undefined) q.delete(k);
  history[replace ? "replaceState" : "pushState"](null, "", "?" + q.toString());
  route();
}

function route() {
  syncAirflowAddress();
  $("share").hidden = true;
  const p = params();
  const view = ["search", "videos", "clips"].includes(p.get("view")) ? p.get("view") : (p.get("dag_id") ? "videos" : "search");
  for (const name of ["search", "videos", "clips"]) $("view-" + name).hidden = name !== view;
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === view);
  if (view === "search") showSearch(p);
  if (view === "videos") showVideos(p);
  if (view === "clips") showClips(p);
}

// --- boxes over a frame ---------------------------------------------------------------------------
function shot(frame) {
  const src = safeMediaUrl(frame.frame_url);
  // a 16:9 placeholder until the picture is in, so the grid does not jump while frames load
  const img = el("img", { src, alt: `Frame ${frame.frame_index}`, loading: "lazy" });
  const wrap = el("div", { class: "shot" }, img);
  const loaded = () => wrap.classList.add("loaded");
  if (img.complete && img.naturalWidth) loaded(); else img.addEventListener("load", loaded, { once: true });
  for (const det of frame.detections) {
    const b = det.bbox;
    if (!b) continue;
    const label = det.label || `${det.text} (${Math.round(Number(det.confidence))}%)`;
    const box = el("div", { class: "box", title: label }, el("span", { class: "label", text: label }));
    box.style.left = (100 * b.left) + "%";
    box.style.top = (100 * b.top) + "%";
    box.style.width = (100 * b.width) + "%";
    box.style.height = (100 * b.height) + "%";
    if (b.top < 0.08) box.classList.add("label-below");
    if (b.left + b.width / 2 > 0.5) box.classList.add("label-left");  // grows leftwards: stays in the frame
    wrap.append(box);
  }
  return wrap;
}

// --- search -----------------------------------------------------------------------------------
// `loading` is the key of the search whose page is on its way: a new search never waits for an old one
const searchState = { key: null, next: null, videos: new Map(), loading: null };
let videoOptions = null;

// The video filter's options; also every video's name, so results can tell same names apart.
function loadVideoOptions() {
  if (!videoOptions) {
    videoOptions = (async () => {
      const { videos } = await api("/videos");
      for (const v of videos) noteVideo(v);
      const select = $("video-filter");
      for (const v of videos) select.append(el("option", { value: v.video_id, text: videoName(v, v.video_id) + " · " + v.video_id }));
      select.value = params().get("video") || "";
    })().catch(() => { videoOptions = null; });
  }
  return videoOptions;
}

function showSearch(p) {
  loadVideoOptions();
  const text = p.get("text") || "";
  const min = p.get("min") || "80", max = p.get("max") || "100", video = p.get("video") || "";
  $("q").value = text; $("min-conf").value = min; $("max-conf").value = max; $("video-filter").value = video;
  const key = JSON.stringify([text, min, max, video, p.get("size")]);
  if (key === searchState.key) return;
  searchState.key = key;
  searchState.next = null;
  searchState.played = false;
  searchState.videos = new Map();
  $("results").replaceChildren();
  $("load-more").hidden = true;
  $("export").hidden = true;
  $("suggest").hidden = true;
  if (/^\s*\d{2,9}\s*$/.test(text)) showSuggestions(text.trim(), key);
  if (!text.trim() && p.get("person")) {  // the photo is never kept: it cannot come back with the address
    setStatus($("search-status"), "");
    $("results").append(el("div", { class: "empty" }, "Choose the photo again to find the person: photos are never kept, so a link or a reload cannot reopen that search."));
    return;
  }
  if (!text.trim()) {
    setStatus($("search-status"), "");
    $("results").append(el("div", { class: "empty" }, "Type a bib number or any text read in the videos, e.g. ", el("b", { text: "1042" }), ", or find a person by a photo of their face."));
    $("q").focus();
    return;
  }
  loadPage();
}

// frames per request: 60 unless the URL says otherwise (1-500, as the API allows)
function pageSize(p) {
  const n = Number(p.get("size"));
  return String(Number.isInteger(n) && n >= 1 && n <= 500 ? n : 60);
}

// A partial number ("104"): the bibs it may be, most often read first, one click to search each.
async function showSuggestions(text, key) {
  let found = [];
  try { found = (await api("/suggest?" + new URLSearchParams({ text }).toString())).suggestions || []; } catch { return; }
  if (key !== searchState.key || !found.length) return;
  const p = params();
  const box = $("suggest");
  box.replaceChildren(el("span", { class: "muted", text: `Bibs starting with ${text}:` }),
    ...found.map((s) => el("button", { type: "button", class: "chip", "data-text": s.text,
      title: [s.passes ? plural(s.passes, "runner pass", "runner passes") : null, s.frames ? plural(s.frames, "read") : null].filter(Boolean).join(", "),
      onclick: () => go("search", { text: s.text, min: p.get("min") || "", max: p.get("max") || "", video: p.get("video") || "" }) }, s.text)));
  box.hidden = false;
}

// Links to the whole result as files (the same query and filters as the page; every page of it).
function showExport(p, any) {
  $("export").hidden = !any;
  const q = new URLSearchParams({ text: p.get("text") || "", min_confidence: p.get("min") || "80", max_confidence: p.get("max") || "100" });
  if (p.get("video")) q.set("video_id", p.get("video"));
  for (const format of ["csv", "json"]) {
    q.set("format", format);
    $("export-" + format).href = `${API}/export?${q.toString()}`;
  }
}

async function loadPage() {
  const key = searchState.key;
  if (searchState.loading === key) return;  // this search's next page is already on its way
  const p = params();
  const q = new URLSearchParams({ text: p.get("text") || "", min_confidence: p.get("min") || "80", max_confidence: p.get("max") || "100", size: pageSize(p) });
  if (p.get("video")) q.set("video_id", p.get("video"));
  if (searchState.next) q.set("after", searchState.next);
  searchState.loading = key;
  $("load-more").disabled = true;
  setStatus($("search-status"), searchState.next ? "Loading more…" : "Searching…");
  try {
    const page = await api("/search?" + q.toString());
    await loadVideoOptions();  // in flight since the view opened: the names of every video
    if (key !== searchState.key) return;
    for (const v of page.videos) noteVideo(v.video);
    if (page.total !== null && page.total !== undefined) searchState.total = page.total;
    for (const v of page.videos) addVideoResult(v, p.get("text"));
    const moment = searchState.videos.get(p.get("play") || "");
    if (moment && !searchState.played && Number.isFinite(Number(p.get("at")))) {  // a shared moment
      searchState.played = true;
      playAt(moment, Math.max(0, Number(p.get("at"))), true);
    }
    searchState.next = page.next;
    $("load-more").hidden = !page.next;
    const shown = [...searchState.videos.values()].reduce((n, v) => n + v.frameCount, 0);
    showExport(p, searchState.videos.size > 0);
    if (!searchState.videos.size) {
      setStatus($("search-status"), "");
      $("results").append(el("div", { class: "empty" }, "No frames show ", el("b", { text: p.get("text") }), ` with confidence ${p.get("min") || 80}–${p.get("max") || 100} %. Try a lower confidence or another spelling.`));
    } else {
      const passes = [...searchState.videos.values()].reduce((n, v) => n + v.passes.length, 0);
      const found = [searchState.total ? plural(searchState.total, "detection") : null, passes ? plural(passes, "runner pass", "runner passes") : null].filter(Boolean).join(" and ") || "0 detections";
      setStatus($("search-status"), `${found} of “${p.get("text")}” in ${plural(searchState.videos.size, "video")} · ${plural(shown, "frame")} shown` + (page.next ? " · more below" : ""));
    }
  } catch (err) {
    if (key === searchState.key) setStatus($("search-status"), err.message, true);
  } finally {
    if (searchState.loading === key) {  // else a newer search is loading and owns the button
      searchState.loading = null;
      $("load-more").disabled = false;
    }
  }
}

function addVideoResult(v, text) {
  let entry = searchState.videos.get(v.video_id);
  if (!entry) {
    const duration = (v.video && v.video.duration_ms) || 0;
    const title = videoName(v.video, v.video_id);
    const timeline = el("div", { class: "timeline", title: "Where the text is seen" });
    const grid = el("div", { class: "frames" });
    // a runner's passes (one bar per runner appearance) replace the loose word segments
    const passes = v.passes || [];
    const bars = passes.length ? passes.map(passBar) : (v.segments || []).map(segmentBar);
    const player = el("div", { class: "player", hidden: true });
    entry = { videoId: v.video_id, frames: [], frameCount: 0, grid, timeline, player, duration, title, segments: v.segments || [], passes, bars, video: v.video };
    const card = el("article", { class: "video-result", "data-video-id": v.video_id },
      el("div", { class: "vr-head" },
        el("h2", { text: title }),
        el("span", { class: "meta", text: [duration ? fmtTime(duration) : null, passes.length ? plural(passes.length, "runner pass", "runner passes") : (entry.segments.length ? plural(entry.segments.length, "appearance") : null)].filter(Boolean).join(" · ") }),
        el("button", { type: "button", class: "primary", onclick: () => openFlipbook(entry, text, 0) }, icon("play"), "Flip-book"),
        el("button", { type: "button", onclick: () => go("clips", { subject: text, video: v.video_id }) }, "Clips")),
      timeline,
      el("div", { class: "timeline-scale" }, el("span", { text: "0:00" }), el("span", { text: duration ? fmtTime(duration) : "" })),
      player,
      grid);
    addTimelineBars(timeline, entry, entry.bars, duration);
    searchState.videos.set(v.video_id, entry);
    $("results").append(card);
  }
  for (const frame of v.frames) {
    const last = entry.frames[entry.frames.length - 1];
    if (last && last.frame_index === frame.frame_index) {  // a frame continued from the previous page
      last.detections.push(...frame.detections);
      last.node.replaceWith(frameCard(entry, last, text));
      continue;
    }
    entry.frames.push(frame);
    entry.frameCount += 1;
    entry.grid.append(frameCard(entry, frame, text));
    if (entry.duration && !entry.bars.length) {
      const tick = el("div", { class: "tick" });
      tick.style.left = (100 * frame.timestamp_ms / entry.duration) + "%";
      entry.timeline.append(tick);
    }
  }
}

function segmentBar(s) {
  return { cls: "seg", start_ms: s.start_ms, end_ms: s.end_ms,
    title: `${fmtTime(s.start_ms)}–${fmtTime(s.end_ms)} · ${s.frame_count} frames · best ${Math.round(s.best_confidence)}%` };
}

function passBar(p) {
  const who = p.name ? `${p.number} ${p.name}` : p.number;
  const misreads = (p.overruled || []).map((o) => `${o.text}×${o.count}`).join(", ");
  return { cls: "seg pass", start_ms: p.start_ms, end_ms: p.end_ms,
    title: `${who} · ${fmtTime(p.start_ms)}–${fmtTime(p.end_ms)} · read in ${p.read_count} of ${p.frame_count} frames` + (misreads ? ` · misreads ${misreads}` : "") };
}

function frameCard(entry, frame, text) {
  const best = Math.max(...frame.detections.map((d) => Number(d.confidence)));
  const node = el("figure", { class: "frame", tabindex: "0", title: "Open in the flip-book",
    onclick: () => openFlipbook(entry, text, entry.frames.indexOf(frame)),
    "aria-label": `Open frame ${frame.frame_index} at ${fmtTime(frame.timestamp_ms)} in the flip-book`,
    onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openFlipbook(entry, text, entry.frames.indexOf(frame)); } } },
    shot(frame),
    el("figcaption", {}, el("span", { text: `${fmtTime(frame.timestamp_ms)} · frame ${frame.frame_index}` }), el("span", { text: `${Math.round(best)}%` })));
  // the video from this moment: a button on the picture (the picture itself opens the flip-book)
  node.querySelector(".shot").append(el("button", { type: "button", class: "play-here",
    title: `Play the video from ${fmtTime(frame.timestamp_ms)}`, "aria-label": `Play the video from ${fmtTime(frame.timestamp_ms)}`,
    onclick: (e) => { e.stopPropagation(); playAt(entry, frame.timestamp_ms); },
    onkeydown: (e) => e.stopPropagation() }, icon("play")));
  frame.node = node;
  return node;
}

// --- find a person by photo -----------------------------------------------------------------------
// The photo stays in this page's memory: it is the body of one search request and is never kept
// (not in localStorage, not in the address, not on the server). A reload therefore asks for it again.
const PHOTO_TYPES = ["image/jpeg", "image/png"];
const MAX_PHOTO_BYTES = 15 * 1024 * 1024;  // the route's limit (Rekognition's for an image)
const PERSON = "this person";
const faceState = { file: null, threshold: null };

const isFaceSubject = (subject) => /^face:/i.test(String(subject || "").trim());
const subjectLabel = (subject) => (isFaceSubject(subject) ? PERSON : subject);

// A chosen or dropped file: checked here first (type, size), previewed from memory (a data: URL).
function pickPhoto(file) {
  faceState.file = null;
  const preview = $("face-preview");
  preview.hidden = true;
  preview.removeAttribute("src");
  if (!file) return false;
  const status = $("search-status");
  if (!PHOTO_TYPES.includes(file.type)) {
    setStatus(status, `“${file.name}” is not a JPEG or PNG photo (${file.type || "unknown type"}): choose a .jpg or .png photo of the person.`, true);
    return false;
  }
  if (file.size > MAX_PHOTO_BYTES) {
    setStatus(status, `The photo is too large (${(file.size / 1048576).toFixed(1)} MB; the limit is 15 MB): use a smaller photo.`, true);
    return false;
  }
  faceState.file = file;
  const reader = new FileReader();
  reader.onload = () => { if (faceState.file === file) { preview.src = reader.result; preview.hidden = false; } };
  reader.readAsDataURL(file);
  return true;
}

const sentence = (text) => String(text || "").replace(/^./, (c) => c.toUpperCase());

async function findPerson() {
  const status = $("search-status");
  const file = faceState.file;
  if (!file) { setStatus(status, "Choose a photo of the person first (JPEG or PNG).", true); $("face-photo").focus(); return; }
  const threshold = Number($("face-threshold").value);
  if ($("face-threshold").value === "" || !(threshold >= 0 && threshold <= 100)) {
    setStatus(status, "Similarity must be between 0 and 100.", true); $("face-threshold").focus(); return;
  }
  const key = "photo:" + Date.now();
  searchState.key = key;  // a text search after this one renders afresh
  searchState.next = null;
  searchState.videos = new Map();
  $("results").replaceChildren();
  for (const id of ["load-more", "export", "suggest"]) $(id).hidden = true;
  const q = new URLSearchParams({ threshold: String(threshold) });
  const video = $("video-filter").value;
  if (video) q.set("video_id", video);
  // the address says a photo was searched, never which: a reload or a link asks for the photo again
  history.replaceState(null, "", "?" + new URLSearchParams({ view: "search", person: "photo", ...(video ? { video } : {}) }).toString());
  syncAirflowAddress();
  $("q").value = "";
  setStatus(status, "Looking for the person…");
  $("face-search").disabled = true;
  try {
    const result = await api("/faces/search?" + q.toString(), { method: "POST", body: file,
      headers: { "Content-Type": file.type, Accept: "application/json" } });
    await loadVideoOptions();
    if (key !== searchState.key) return;
    faceState.threshold = threshold;
    showPerson(result);
  } catch (err) {
    if (key === searchState.key) setStatus(status, sentence(err.message), true);
  } finally { $("face-search").disabled = false; }
}

function showPerson(result) {
  const status = $("search-status");
  const videos = result.videos || [];
  const several = result.query && result.query.faces_in_photo > 1 ? ` The photo shows ${result.query.faces_in_photo} faces: the largest was searched.` : "";
  if (!videos.length) {
    setStatus(status, "");
    $("results").append(el("div", { class: "empty person-none" },
      `No match: nobody in the analysed videos looks like this photo at similarity ${result.threshold}% or more. Try a lower similarity, or a photo with the face seen from the front.${several}`));
    return;
  }
  for (const v of videos) addPersonResult(v, result);
  const frames = videos.reduce((n, v) => n + v.frames.length, 0);
  const passes = videos.reduce((n, v) => n + (v.passes || []).length, 0);
  setStatus(status, `The person is seen in ${plural(frames, "frame")} of ${plural(videos.length, "video")}`
    + (passes ? ` · ${plural(passes, "runner pass", "runner passes")}` : "")
    + ` · similarity ≥ ${result.threshold}%` + (result.truncated ? " · the best matches only" : "") + "." + several);
}

function personPassLabel(p) {
  return [`Bib ${p.number}`, p.name || null].filter(Boolean).join(" · ");
}

function addPersonResult(v, result) {
  const known = videosById.get(v.video_id);
  const duration = (known && known.duration_ms) || 0;
  const title = videoName(known, v.video_id);
  // the face boxes, drawn like text boxes: labelled with their similarity to the photo
  const frames = v.frames.map((f) => ({ ...f, detections: f.faces.map((face) => ({
    bbox: face.bbox, confidence: face.similarity, text: PERSON, label: `${Math.round(face.similarity)}% match` })) }));
  const passes = v.passes || [];
  const tracks = v.tracks || [];
  const timeline = el("div", { class: "timeline", title: "Where the person is seen" });
  const grid = el("div", { class: "frames" });
  const player = el("div", { class: "player", hidden: true });
  const entry = { videoId: v.video_id, frames, frameCount: frames.length, grid, timeline, player, duration, title, segments: [], passes, bars: [], video: known };
  const bars = [
    ...tracks.map((t) => ({ cls: "seg face", start_ms: t.start_ms, end_ms: t.end_ms,
      title: `Face seen ${fmtTime(t.start_ms)}–${fmtTime(t.end_ms)} · best ${Math.round(t.best_similarity)}% match` })),
    ...passes.map((p) => ({ cls: "seg pass", start_ms: p.start_ms, end_ms: p.end_ms,
      title: `${personPassLabel(p)} · ${fmtTime(p.start_ms)}–${fmtTime(p.end_ms)}` })),
  ];
  if (!bars.length) bars.push(...frames.map((f) => ({ cls: "seg face", start_ms: f.timestamp_ms, end_ms: f.timestamp_ms, title: `Seen at ${fmtTime(f.timestamp_ms)}` })));
  entry.bars = bars;
  const passList = passes.length ? el("ul", { class: "person-passes", "aria-label": "Runner passes of this person" },
    ...passes.map((p) => el("li", { class: "person-pass", "data-pass-id": p.pass_id },
      el("b", { text: personPassLabel(p) }),
      el("span", { class: "muted", text: `${fmtTime(p.start_ms)}–${fmtTime(p.end_ms)}` }),
      el("button", { type: "button", class: "chip", onclick: () => playAt(entry, p.start_ms), "aria-label": `Play ${personPassLabel(p)} from ${fmtTime(p.start_ms)}` }, icon("play"), "Play")))) : null;
  const card = el("article", { class: "video-result person-result", "data-video-id": v.video_id },
    el("div", { class: "vr-head" },
      el("h2", { text: title }),
      el("span", { class: "meta", text: [duration ? fmtTime(duration) : null, plural(frames.length, "frame"), `best ${Math.round(v.best_similarity)}% match`].filter(Boolean).join(" · ") }),
      el("button", { type: "button", class: "primary", onclick: () => openFlipbook(entry, PERSON, 0) }, icon("play"), "Flip-book"),
      result.person_face ? el("button", { type: "button", class: "person-clip", onclick: () => requestPersonClip(result.person_face, v.video_id) }, "Request clip") : null),
    passList,
    timeline,
    el("div", { class: "timeline-scale" }, el("span", { text: "0:00" }),
      el("span", { class: "legend" }, el("i", { class: "key face" }), "face seen", passes.length ? el("i", { class: "key pass" }) : null, passes.length ? "runner pass" : null),
      el("span", { text: duration ? fmtTime(duration) : "" })),
    player,
    grid);
  addTimelineBars(timeline, entry, bars, duration);
  for (const frame of frames) grid.append(frameCard(entry, frame, PERSON));
  searchState.videos.set(v.video_id, entry);
  $("results").append(card);
}

// The clip request for the person: the Clips view's own flow, naming them by a face of the index.
function requestPersonClip(faceId, videoId) {
  go("clips", { subject: "face:" + faceId, video: videoId || "" });
  requestClip();
}

// --- the video itself, from a moment ------------------------------------------------------------------
// /reko/video/<id> serves the file the index's video document names (ranges, so seeking is cheap).
// The moment is part of the address (play=<video id>&at=<ms>), so a copied link plays it too.
function noteMoment(videoId, ms) {
  const q = params();
  if (videoId) { q.set("play", videoId); q.set("at", String(Math.round(ms))); } else { q.delete("play"); q.delete("at"); }
  history.replaceState(null, "", "?" + q.toString());
  syncAirflowAddress();
}

// One button per bar on a video's timeline, placed by time; a click plays the video from there.
function addTimelineBars(timeline, entry, bars, duration) {
  if (!duration) return;
  for (const bar of bars) {
    const seg = el("button", { type: "button", class: bar.cls, title: bar.title + " · click to play from here",
      "aria-label": `Play from ${fmtTime(bar.start_ms)}: ${bar.title}`, onclick: () => playAt(entry, bar.start_ms) });
    seg.style.left = (100 * bar.start_ms / duration) + "%";
    seg.style.width = (100 * Math.max(bar.end_ms - bar.start_ms, 500) / duration) + "%";
    timeline.append(seg);
  }
}

function playAt(entry, ms, fromAddress) {
  if (!fromAddress) noteMoment(entry.videoId, ms);
  const box = entry.player;
  let video = box.querySelector("video");
  if (!video) {
    video = el("video", { controls: true, playsinline: true, preload: "metadata", src: `${BASE}/video/${encodeURIComponent(entry.videoId)}` });
    const close = el("button", { type: "button", class: "icon", "aria-label": "Close the video", onclick: () => { video.pause(); box.hidden = true; noteMoment(null); } }, icon("close"));
    box.replaceChildren(video, el("div", { class: "player-bar" }, el("span", { class: "player-at muted" }), close));
    video.addEventListener("error", () => { box.querySelector(".player-at").textContent = "This video cannot be played here."; });
  }
  box.hidden = false;
  box.querySelector(".player-at").textContent = `Playing from ${fmtTime(ms)}`;
  const start = () => {
    video.currentTime = ms / 1000;
    video.play().catch(() => { /* the user presses play */ });
  };
  if (video.readyState >= 1) start(); else video.addEventListener("loadedmetadata", start, { once: true });
  box.scrollIntoView({ block: "nearest" });
}

// --- flip-book -------------------------------------------------------------------------------------
const fb = { entry: null, index: 0, timer: null, baseFps: 2 };

function openFlipbook(entry, text, index) {
  fb.entry = entry;
  fb.opener = document.activeElement;  // focus goes back there on close
  $("fb-title").textContent = `“${text}” in ${entry.title}`;
  $("fb-scrub").max = String(Math.max(0, entry.frames.length - 1));
  $("flipbook").hidden = false;
  showFrame(Math.max(0, index));
  $("fb-play").focus();
}

function showFrame(i) {
  const frames = fb.entry.frames;
  fb.index = (i + frames.length) % frames.length;
  const frame = frames[fb.index];
  $("fb-stage").replaceChildren(shot(frame));
  $("fb-scrub").value = String(fb.index);
  $("fb-pos").textContent = `${fb.index + 1} / ${frames.length} · ${fmtTime(frame.timestamp_ms)} · frame ${frame.frame_index}`;
  const next = frames[(fb.index + 1) % frames.length];  // preload the next image
  if (next) new Image().src = safeMediaUrl(next.frame_url) || "";
}

function setPlaying(on) {
  clearInterval(fb.timer);
  fb.timer = null;
  if (on) fb.timer = setInterval(() => showFrame(fb.index + 1), 1000 / (fb.baseFps * Number($("fb-speed").value)));
  setButton($("fb-play"), on ? "pause" : "play", on ? "Pause" : "Play");
  $("fb-play").setAttribute("aria-label", on ? "Pause" : "Play");
  $("flipbook").dataset.playing = on ? "true" : "false";
}

function closeFlipbook() {
  setPlaying(false);
  $("flipbook").hidden = true;
  if (fb.opener && fb.opener.isConnected) fb.opener.focus();
}

// Tab and Shift+Tab stay inside the open flip-book (a modal dialog).
function trapFocus(e) {
  const items = [...$("flipbook").querySelectorAll("button, input, select, a[href], video, [tabindex]")]
    .filter((n) => !n.disabled && n.tabIndex >= 0 && n.getClientRects().length);
  if (!items.length) return;
  const first = items[0], last = items[items.length - 1];
  const inside = $("flipbook").contains(document.activeElement);
  if (e.shiftKey && (document.activeElement === first || !inside)) { e.preventDefault(); last.focus(); }
  else if (!e.shiftKey && (document.activeElement === last || !inside)) { e.preventDefault(); first.focus(); }
}

// --- videos ----------------------------------------------------------------------------------------
async function showVideos(p) {
  const dagId = p.get("dag_id") || "";
  const list = $("videos");
  setStatus($("videos-status"), "Loading…");
  try {
    const { videos } = await api("/videos" + (dagId ? "?dag_id=" + encodeURIComponent(dagId) : ""));
    list.replaceChildren();
    for (const v of videos) noteVideo(v);
    setStatus($("videos-status"), `${videos.length} video${videos.length === 1 ? "" : "s"}` + (dagId ? ` analysed by ${dagId}` : ""));
    if (!videos.length) {
      list.append(el("div", { class: "empty" }, dagId ? `No videos were analysed by the DAG ${dagId}. Videos come from video_analysis runs.` : "No videos analysed yet: trigger video_analysis with a video_uri."));
    }
    for (const v of videos) list.append(videoCard(v));
  } catch (err) { setStatus($("videos-status"), err.message, true); }
}

function videoCard(v) {
  const counts = v.counts || {};
  const failed = counts.failed_frames || 0;
  const runPath = v.dag_id && v.run_id ? `/dags/${encodeURIComponent(v.dag_id)}/runs/${encodeURIComponent(v.run_id)}` : null;
  const stat = (value, label, bad) => el("div", { class: "stat" + (bad ? " bad" : "") }, el("b", { text: value }), el("span", { text: label }));
  return el("article", { class: "video-card", "data-video-id": v.video_id },
    el("img", { class: "thumb", src: safeMediaUrl(v.thumbnail_url), alt: "", loading: "lazy" }),
    el("div", { class: "body" },
      el("div", { class: "vr-head" }, el("h2", { text: videoName(v, v.video_id) }), el("span", { class: "badge " + (v.status || ""), text: v.status || "unknown" })),
      el("div", { class: "id", text: v.video_id }),
      el("div", { class: "stats" },
        stat(v.duration_ms ? fmtTime(v.duration_ms) : "–", "duration"),
        stat(fmtNum(v.frame_count), "frames"),
        stat(fmtNum(counts.detections), "detections"),
        stat(fmtNum(failed), "failed frames", failed > 0)),
      el("div", { class: "card-actions" },
        el("a", { href: "?" + new URLSearchParams({ view: "search", video: v.video_id }).toString(), onclick: (e) => { e.preventDefault(); go("search", { video: v.video_id }); } }, "Search this video"),
        runPath ? airflowLink(runPath, "Last run", "Open the run in Airflow") : null,
        el("span", { class: "muted analysed", title: airflowTimeZone(), text: v.processed_at ? "analysed " + fmtDate(v.processed_at) : "" }))));
}

// --- clips -----------------------------------------------------------------------------------------
const clipRun = { id: null, timer: null };

async function showClips(p) {
  const subject = p.get("subject") || "";
  $("clip-subject").value = subject;
  showClipsDag();
  if (p.get("run")) watchRun(p.get("run"));
  await loadClips(subject, p.get("video") || "");
}

// A paused video_clips queues every request forever: say so before anyone waits for it.
async function showClipsDag() {
  const note = $("clips-dag");
  try {
    const dag = await api("/clips/dag");
    note.hidden = dag.is_paused !== true;
    if (dag.is_paused === true) {
      note.replaceChildren(el("span", { text: `${dag.dag_id} is paused: unpause it in Airflow, or a requested clip waits in the queue.` }), dagLink(dag.url, dag.dag_id));
    }
  } catch (err) { note.hidden = true; }
}

function dagLink(url, dagId) {
  return url && url.startsWith("/dags/") ? airflowLink(url, `Open ${dagId || "the DAG"} in Airflow`) : null;
}

async function loadClips(subject, video) {
  const grid = $("clips");
  if (!subject.trim()) {
    grid.replaceChildren(el("div", { class: "empty" }, "Name a subject (a bib number or a text) to see its clips, or request one."));
    setStatus($("clips-status"), "");
    return;
  }
  setStatus($("clips-status"), "Loading clips…");
  try {
    const q = new URLSearchParams({ subject });
    if (video) q.set("video_id", video);
    const { clips } = await api("/clips?" + q.toString());
    grid.replaceChildren();
    setStatus($("clips-status"), clips.length ? `${clips.length} clip${clips.length === 1 ? "" : "s"} of “${subjectLabel(subject)}”` : "");
    if (!clips.length) grid.append(el("div", { class: "empty" }, "No clip of ", el("b", { text: subjectLabel(subject) }), " yet. Use ", el("b", { text: "Request clip" }), " to cut one."));
    await loadVideoOptions();  // every video's name, for the cards
    for (const c of clips) grid.append(clipCard(c));
  } catch (err) { setStatus($("clips-status"), err.message, true); }
}

// A clip: the video's name (not its id), when in the video, its length, a download, and its run.
function clipCard(c) {
  const src = safeMediaUrl(c.clip_url);
  const name = videoName(videosById.get(c.video_id), c.video_id);
  const file = `${name.replace(/[^\w.-]+/g, "_").replace(/\.\w+$/, "")}_${isFaceSubject(c.subject) ? "person" : c.subject}_${fmtTime(c.start_ms).replace(/:/g, "-")}.mp4`;
  return el("article", { class: "clip", "data-clip-uri": c.clip_uri },
    el("video", { src, controls: true, preload: "auto", playsinline: true, muted: true }),
    el("div", { class: "body" },
      el("b", { text: `${isFaceSubject(c.subject) ? "The person" : c.subject} · ${fmtTime(c.start_ms)}–${fmtTime(c.end_ms)}` }),
      el("span", { class: "meta clip-video", title: c.video_id, text: `${name} · ${Number(c.duration_s).toFixed(1)} s` }),
      el("div", { class: "card-actions" },
        src ? el("a", { class: "button", href: src, download: file.replace(/[^\w.-]+/g, "_") }, icon("download"), "Download") : null,
        c.run_id ? airflowLink(`/dags/video_clips/runs/${encodeURIComponent(c.run_id)}`, "Run", `The video_clips run that cut it: ${c.run_id}`) : null)));
}

async function requestClip() {
  const subject = $("clip-subject").value.trim();
  if (!subject) { $("clip-subject").focus(); return; }
  const padding_s = Number($("clip-padding").value || 2);
  const body = isFaceSubject(subject)  // a person: by a face of the index, at the page's similarity
    ? { face_id: subject.replace(/^face:/i, "").trim(), padding_s, ...(faceState.threshold !== null ? { face_threshold: faceState.threshold } : {}) }
    : { subject, padding_s };
  const video = params().get("video");
  if (video) body.video_ids = [video];
  $("request-clip").disabled = true;
  delete $("clip-run").dataset.reused;
  try {
    const run = await api("/clips", { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body) });
    if (run.reused === "clips") {  // cut already: shown, not cut again
      go("clips", { subject, video: video || "" }, true);
      showRun(null, "success", `These clips of “${subjectLabel(subject)}” exist already: shown below.`);
      $("clip-run").dataset.reused = "clips";
      return;
    }
    go("clips", { subject, video: video || "", run: run.dag_run_id }, true);
    if (run.reused === "run") $("clip-run").dataset.reused = "run";
  } catch (err) {
    showRun(null, "failed", err.message);
  } finally { $("request-clip").disabled = false; }
}

function showRun(runId, state, message, run) {
  const box = $("clip-run");
  box.hidden = false;
  const active = state === "queued" || state === "running";
  const waiting = !!(run && run.waiting);
  box.dataset.state = state;
  box.dataset.waiting = waiting ? (run.dag_paused ? "paused" : "queued") : "";
  box.replaceChildren(...[
    active ? el("div", { class: "spinner", "aria-hidden": "true" }) : null,
    el("span", { class: "badge " + state, text: state }),
    el("span", { class: waiting ? "waiting" : null, text: message }),
    waiting && run.dag_paused ? dagLink(run.dag_url, "video_clips") : null,
    runId ? airflowLink(`/dags/video_clips/runs/${encodeURIComponent(runId)}`, "View run in Airflow") : null,
  ].filter(Boolean));
}

function watchRun(runId) {
  if (clipRun.id === runId) return;
  clearTimeout(clipRun.timer);
  clipRun.id = runId;
  const poll = async () => {
    if (clipRun.id !== runId) return;
    try {
      const run = await api("/clips/runs/" + encodeURIComponent(runId));
      const conf = run.conf || {};
      const subject = conf.subject || (conf.face_id ? "face:" + conf.face_id : $("clip-subject").value);
      const label = subjectLabel(subject);
      if (run.state === "success") {
        showRun(runId, "success", `Clips of “${label}” are ready.`);
        await loadClips(subject, params().get("video") || "");
        return;
      }
      if (run.state === "failed") { showRun(runId, "failed", `Cutting clips of “${label}” failed: see the run's logs.`); return; }
      // not started yet: the API says why (paused, or queued too long) and what to do
      const again = $("clip-run").dataset.reused === "run" ? "Already requested: " : "";
      showRun(runId, run.state || "queued", run.waiting || `${again}cutting clips of “${label}”…`.replace(/^c/, "C"), run);
      if (run.dag_paused === false) $("clips-dag").hidden = true;
    } catch (err) { showRun(runId, "failed", err.message); return; }
    clipRun.timer = setTimeout(poll, 2000);
  };
  showRun(runId, "queued", "Waiting for Airflow…");
  poll();
}

// --- wiring ------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", (e) => {
      e.preventDefault();
      const p = params();
      const keep = {};
      if (tab.dataset.view === "search" && p.get("subject")) keep.text = p.get("subject");
      if (tab.dataset.view === "clips" && p.get("text")) keep.subject = p.get("text");
      go(tab.dataset.view, keep);
    });
  }
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    let min = Number($("min-conf").value || 0), max = Number($("max-conf").value || 100);
    if (min > max) [min, max] = [max, min];
    go("search", { text: $("q").value.trim(), min: String(min), max: String(max), video: $("video-filter").value });
  });
  $("load-more").addEventListener("click", loadPage);
  $("face-form").addEventListener("submit", (e) => { e.preventDefault(); findPerson(); });
  $("face-photo").addEventListener("change", () => {
    const picked = pickPhoto($("face-photo").files[0]);
    $("face-photo").value = "";  // held in memory only; choosing the same photo again searches again
    if (picked) findPerson();
  });
  const drop = $("face-form");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("dragging"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("dragging");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (pickPhoto(file)) findPerson();
  });
  $("copy-link").addEventListener("click", copyLink);
  $("share-close").addEventListener("click", () => { $("share").hidden = true; $("copy-link").focus(); });
  $("clip-form").addEventListener("submit", (e) => { e.preventDefault(); requestClip(); });
  $("show-clips").addEventListener("click", () => go("clips", { subject: $("clip-subject").value.trim(), video: params().get("video") || "" }));
  $("fb-close").addEventListener("click", closeFlipbook);
  $("flipbook").addEventListener("click", (e) => { if (e.target === $("flipbook")) closeFlipbook(); });
  $("fb-play").addEventListener("click", () => setPlaying(!fb.timer));
  $("fb-prev").addEventListener("click", () => { setPlaying(false); showFrame(fb.index - 1); });
  $("fb-next").addEventListener("click", () => { setPlaying(false); showFrame(fb.index + 1); });
  $("fb-video").addEventListener("click", () => {
    const entry = fb.entry, frame = entry.frames[fb.index];
    fb.opener = null;
    closeFlipbook();
    playAt(entry, frame.timestamp_ms);
  });
  $("fb-speed").addEventListener("change", () => { if (fb.timer) setPlaying(true); });
  $("fb-scrub").addEventListener("input", () => { setPlaying(false); showFrame(Number($("fb-scrub").value)); });
  document.addEventListener("keydown", (e) => {
    if ($("flipbook").hidden) return;
    if (e.key === "Escape") closeFlipbook();
    else if (e.key === "Tab") trapFocus(e);
    else if (e.target.closest && e.target.closest("button, select, input, video")) return;  // the control's own keys
    else if (e.key === " ") { e.preventDefault(); setPlaying(!fb.timer); }
    else if (e.key === "ArrowRight") { setPlaying(false); showFrame(fb.index + 1); }
    else if (e.key === "ArrowLeft") { setPlaying(false); showFrame(fb.index - 1); }
  });
  window.addEventListener("popstate", route);
  route();
});
