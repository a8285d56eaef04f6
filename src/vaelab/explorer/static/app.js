// vaelab explore: vanilla JS, no build step. Talks to the JSON/PNG API of `vaelab explore RUN`.
"use strict";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const PLANE_SPAN = 3;   // the plane canvas shows [-3, 3]^2 around the centre of the test latents
const $ = (id) => document.getElementById(id);
let info = null, z = [], scatter = null, picked = null;

function status(message) { $("status").textContent = message || ""; }

async function api(path) {
  const response = await fetch(path);
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// One request in flight per image; the latest wanted URL wins (no queue of stale requests).
function imageLoader(img) {
  let busy = false, wanted = null, lastUrl = null;
  async function run() {
    busy = true;
    while (wanted !== null) {
      const url = wanted; wanted = null;
      try {
        const blob = await (await api(url)).blob();
        if (lastUrl) URL.revokeObjectURL(lastUrl);
        lastUrl = URL.createObjectURL(blob);
        img.src = lastUrl;
        img.dataset.query = url;
        status("");
      } catch (e) { status(e.message); }
    }
    busy = false;
  }
  return (url) => { wanted = url; if (!busy) run(); };
}

let loadDecoded, loadInterp;

function classParam() { return info.conditional ? "&y=" + $("class").value : ""; }

function decode() {
  loadDecoded("/api/decode?z=" + z.map((v) => v.toFixed(4)).join(",") + classParam());
  drawPlane();
}

function buildSliders() {
  const box = $("sliders");
  box.textContent = "";
  z.forEach((value, i) => {
    const label = document.createElement("label");
    label.textContent = "z" + (i + 1);
    label.htmlFor = "z" + i;
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", id: "z" + i, min: -info.z_bound, max: info.z_bound, step: 0.01, value });
    slider.className = "zslider";
    const out = document.createElement("output");
    out.id = "zout" + i;
    out.textContent = value.toFixed(2);
    slider.addEventListener("input", () => { z[i] = Number(slider.value); out.textContent = z[i].toFixed(2); decode(); });
    box.append(label, slider, out);
  });
}

function setZ(values) {
  z = values.map((v) => Math.max(-info.z_bound, Math.min(info.z_bound, v)));
  z.forEach((v, i) => { $("z" + i).value = v; $("zout" + i).textContent = v.toFixed(2); });
  decode();
}

// --- the 2D plane: z = centre + u d1 + v d2 --------------------------------------------------
function planeCoords(values) {
  const d = info.directions, c = info.centre;
  return [0, 1].map((k) => (d[k] ? values.reduce((s, v, i) => s + (v - c[i]) * d[k][i], 0) : 0));
}

function drawPlane() {
  const canvas = $("plane"), ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#ddd";
  ctx.beginPath(); ctx.moveTo(w / 2, 0); ctx.lineTo(w / 2, h); ctx.moveTo(0, h / 2); ctx.lineTo(w, h / 2); ctx.stroke();
  const [u, v] = planeCoords(z);
  const x = (u / PLANE_SPAN + 1) * w / 2, y = (1 - v / PLANE_SPAN) * h / 2;
  ctx.fillStyle = "#d62728";
  ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.fill();
}

function planeDrag(event) {
  const canvas = $("plane"), r = canvas.getBoundingClientRect();
  const u = ((event.clientX - r.left) / r.width * 2 - 1) * PLANE_SPAN;
  const v = (1 - (event.clientY - r.top) / r.height * 2) * PLANE_SPAN;
  // keep the components outside the plane, replace the two plane coordinates
  const [u0, v0] = planeCoords(z), d = info.directions;
  setZ(z.map((value, i) => value + (u - u0) * d[0][i] + (d[1] ? (v - v0) * d[1][i] : 0)));
}

// --- the scatter of test latents ------------------------------------------------------------
let bounds = null;
function drawScatter() {
  const canvas = $("scatter"), ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, pts = scatter.points;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const pad = 0.05;
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x1 - x0 < 1e-9) { x0 -= 1; x1 += 1; }
  if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
  bounds = { x0: x0 - pad * (x1 - x0), x1: x1 + pad * (x1 - x0), y0: y0 - pad * (y1 - y0), y1: y1 + pad * (y1 - y0) };
  ctx.clearRect(0, 0, w, h);
  pts.forEach((p, i) => {
    const [x, y] = toCanvas(p);
    ctx.fillStyle = COLORS[scatter.labels[i] % 10];
    ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
  });
  if (picked !== null) {
    const [x, y] = toCanvas(picked.point.length > 1 ? picked.point : [picked.point[0], 0]);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI); ctx.stroke();
  }
}

function toCanvas(p) {
  const c = $("scatter");
  return [(p[0] - bounds.x0) / (bounds.x1 - bounds.x0) * c.width, (1 - (p[1] - bounds.y0) / (bounds.y1 - bounds.y0)) * c.height];
}

async function pickPoint(event) {
  const canvas = $("scatter"), r = canvas.getBoundingClientRect();
  const mx = (event.clientX - r.left) * canvas.width / r.width, my = (event.clientY - r.top) * canvas.height / r.height;
  let best = -1, bestD = Infinity;
  scatter.points.forEach((p, i) => {
    const [x, y] = toCanvas(p), d = (x - mx) ** 2 + (y - my) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  });
  if (best >= 0) await showImage(scatter.indices[best]);
}

async function showImage(index) {
  try {
    picked = await (await api("/api/image?index=" + index)).json();
  } catch (e) { status(e.message); return; }
  $("orig").src = picked.original;
  $("recon").src = picked.reconstruction;
  $("orig-cap").textContent = "test image " + index + " (class " + picked.label + ")";
  ["use-a", "use-b", "to-sliders"].forEach((id) => { $(id).disabled = false; });
  drawScatter();
}

// --- interpolation ----------------------------------------------------------------------------
function checkedIndex(input) {
  const n = Math.floor(Number(input.value));
  const ok = Number.isFinite(n) && n >= 0 && n < info.n_test;
  if (!ok) status("A and B are test image indices from 0 to " + (info.n_test - 1));
  return ok ? n : null;
}

async function endpoints() {
  const a = checkedIndex($("a")), b = checkedIndex($("b"));
  if (a === null || b === null) return;
  try {
    const [ia, ib] = await Promise.all([a, b].map(async (i) => (await api("/api/image?index=" + i)).json()));
    $("img-a").src = ia.original;
    $("img-b").src = ib.original;
  } catch (e) { status(e.message); return; }
  interpolate();
}

function interpolate() {
  const a = checkedIndex($("a")), b = checkedIndex($("b"));
  if (a === null || b === null) return;
  const t = Number($("t").value);
  $("t-cap").textContent = "t = " + t.toFixed(2);
  loadInterp("/api/interpolate?a=" + a + "&b=" + b + "&t=" + t.toFixed(3) + classParam());
}

// --- start ------------------------------------------------------------------------------------
async function start() {
  loadDecoded = imageLoader($("decoded"));
  loadInterp = imageLoader($("interp-img"));
  try {
    info = await (await api("/api/info")).json();
  } catch (e) { status("cannot load the model: " + e.message); return; }
  $("title").textContent = info.model + " on " + info.dataset + ", z = " + info.z_dim + " (" + info.run + ")";
  $("plane-hint").textContent = "Drag: the " + info.plane + " (±" + PLANE_SPAN + " around the centre of the test latents).";
  ["decoded", "interp-img"].forEach((id) => { $(id).width = info.image_shape[1] * 6; $(id).height = info.image_shape[0] * 6; });
  if (info.conditional) {
    const select = $("class");
    for (let c = 0; c < info.n_classes; c++) select.add(new Option(String(c), String(c)));
    $("class-row").hidden = false;
    select.addEventListener("change", () => { decode(); interpolate(); });
  }
  $("a").max = $("b").max = info.n_test - 1;
  z = info.z_start.slice();
  buildSliders();
  decode();
  let dragging = false;
  const plane = $("plane");
  plane.addEventListener("pointerdown", (e) => { dragging = true; plane.setPointerCapture(e.pointerId); planeDrag(e); });
  plane.addEventListener("pointermove", (e) => { if (dragging) planeDrag(e); });
  plane.addEventListener("pointerup", () => { dragging = false; });
  $("reset").addEventListener("click", () => setZ(info.z_start));
  $("t").addEventListener("input", interpolate);
  $("a").addEventListener("change", endpoints);
  $("b").addEventListener("change", endpoints);
  $("use-a").addEventListener("click", () => { $("a").value = picked.index; endpoints(); });
  $("use-b").addEventListener("click", () => { $("b").value = picked.index; endpoints(); });
  $("to-sliders").addEventListener("click", () => setZ(picked.z));
  $("scatter").addEventListener("click", pickPoint);
  try {
    scatter = await (await api("/api/scatter")).json();
    drawScatter();
  } catch (e) { status(e.message); }
  await endpoints();
  document.body.dataset.ready = "1";
}

start();
