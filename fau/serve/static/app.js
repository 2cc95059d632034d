// fau serve page: upload photos, draw faces, AU bars, explanations, attention; re-label with the slider.
"use strict";

const IMAGE_SUFFIXES = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"];
const state = { info: null, id: null, images: [], threshold: null, busy: false, relabelTimer: null, relabelSeq: 0 };
const $ = (id) => document.getElementById(id);
const message = $("message");

function currentThresholds() {
  return state.threshold === null ? state.info.thresholds : state.info.labels.map(() => state.threshold);
}

function limitsText(limits) {
  return `Up to ${limits.max_files} photos at a time, ${limits.max_file_mb} MB and ${limits.max_megapixels} megapixels ` +
         "each. Photos are processed on this computer only.";
}

async function init() {
  const result = await callServer("/api/info", {}, 30000);
  if (!result.ok) { showFailure(message, result); return; }
  state.info = result.data;
  const info = state.info;
  $("model-line").textContent = `${info.model} · ${info.labels.length} AUs (${info.labels.join(", ")})` +
    (info.dataset ? ` · trained on ${info.dataset}` : "") + ` · template ${info.template}` +
    (info.explains ? " · attention maps" : " · no attention maps (the model does not explain itself)");
  $("limits").textContent = limitsText(info.limits);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(e.dataTransfer.files, false); });
  $("files").addEventListener("change", (e) => { upload(e.target.files, false); e.target.value = ""; });
  $("folder").addEventListener("change", (e) => { upload(e.target.files, true); e.target.value = ""; });
  $("threshold").addEventListener("input", (e) => setThreshold(parseFloat(e.target.value)));
  $("reset-threshold").addEventListener("click", () => setThreshold(null));
}

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["files", "folder"]) $(id).disabled = busy;
  $("drop").classList.toggle("disabled", busy);
}

async function upload(fileList, fromFolder) {
  if (!state.info) return;
  if (state.busy) { showMessage(message, "busy: the photos sent before are still being processed", "busy"); return; }
  let files = Array.from(fileList || []);
  if (fromFolder) files = files.filter((f) => IMAGE_SUFFIXES.some((s) => f.name.toLowerCase().endsWith(s)));
  if (!files.length) {
    showMessage(message, fromFolder ? "no image files in that folder" : "no file received", "error");
    return;
  }
  const limits = state.info.limits;
  if (files.length > limits.max_files) {
    showMessage(message, `${files.length} photos: at most ${limits.max_files} per request; pick fewer`, "error");
    return;
  }
  const tooBig = files.filter((f) => f.size > limits.max_file_mb * 1048576);
  const send = files.filter((f) => f.size <= limits.max_file_mb * 1048576);
  const local = tooBig.map((f) => ({ file: f, record: { image: f.name, faces: [],
    error: `${f.name}: ${(f.size / 1048576).toFixed(1)} MB is larger than the limit of ${limits.max_file_mb} MB` }, faces: [] }));
  if (!send.length) { render(local, null); summarise(local); return; }
  const form = new FormData();
  for (const f of send) form.append("files", f, f.webkitRelativePath || f.name);
  setBusy(true);
  message.className = "message show info"; message.dataset.kind = "info";
  message.replaceChildren(h("span", { class: "spinner" }), `detecting faces and predicting AUs in ${send.length} photo(s)…`);
  const result = await callServer("/api/predict", { method: "POST", body: form });
  setBusy(false);
  if (!result.ok) { showFailure(message, result); return; }
  const images = result.data.images.map((entry, i) => ({ ...entry, file: send[i] }));
  render(images.concat(local), result.data.id);
  summarise(images.concat(local));
}

function summarise(images) {
  const failed = images.filter((im) => im.record.error);
  const faces = images.reduce((n, im) => n + im.record.faces.length, 0);
  const faceless = images.filter((im) => !im.record.error && !im.record.faces.length);
  let text = `${images.length} photo(s), ${faces} face(s).`;
  if (faceless.length) text += ` No face found in ${faceless.map((im) => im.record.image).join(", ")}.`;
  if (failed.length) {
    showMessage(message, text + ` ${failed.length} could not be used:\n` + failed.map((im) => im.record.error).join("\n"), "error");
  } else {
    showMessage(message, text, faceless.length ? "busy" : "ok");
  }
}

function render(images, id) {
  state.images = images;
  state.id = id;
  const results = $("results");
  results.replaceChildren();
  $("controls").hidden = !id;
  for (const [index, image] of images.entries()) results.append(imageBlock(image, index));
  applyThresholds(true);
}

function imageBlock(image, index) {
  const record = image.record;
  const block = h("section", { class: "image-block", "data-image": record.image });
  block.append(h("h2", {}, record.image));
  if (record.error) { block.append(h("div", { class: "image-error" }, record.error)); return block; }
  if (!record.faces.length) {
    block.append(h("div", { class: "no-face" }, `No face found in ${record.image}.`));
  }
  const wrap = h("div", { class: "photo-wrap" });
  const img = h("img", { alt: record.image });
  img.addEventListener("load", () => {
    for (const [f, face] of record.faces.entries()) {
      const [x0, y0, x1, y1] = face.box;
      const w = img.naturalWidth, hgt = img.naturalHeight;
      wrap.append(h("div", { class: "box", style: { left: `${(100 * x0) / w}%`, top: `${(100 * y0) / hgt}%`,
        width: `${(100 * (x1 - x0)) / w}%`, height: `${(100 * (y1 - y0)) / hgt}%` } }, h("span", {}, `face ${f + 1}`)));
    }
  });
  img.addEventListener("error", () => wrap.replaceChildren(h("div", { class: "muted" },
    "(this browser cannot display the photo's format; the model's face crops are below)")));
  if (image.file) img.src = URL.createObjectURL(image.file);
  wrap.append(img);
  block.append(wrap);
  for (const [f, face] of record.faces.entries()) block.append(faceCard(face, image.faces[f], index, f));
  return block;
}

function faceCard(face, pictures, imageIndex, faceIndex) {
  const labels = state.info.labels;
  const card = h("div", { class: "face-card", "data-face": `${imageIndex}:${faceIndex}` });
  const score = face.score === null ? "" : `, detector score ${face.score.toFixed(2)}`;
  card.append(h("h3", {}, `Face ${faceIndex + 1}`, h("span", { class: "muted" }, ` (${face.detector || "aligned"}${score})`)));
  const bars = h("div", { class: "bars" });
  for (const name of labels) {
    const p = face.aus[name];
    bars.append(h("div", { class: "au-row", "data-au": name },
      h("span", { class: "name" }, name),
      h("div", { class: "track" }, h("div", { class: "fill", style: { width: `${100 * p}%` } }), h("div", { class: "tick" })),
      h("span", { class: "value" }, p.toFixed(3))));
  }
  bars.append(h("div", { class: "legend" }, "bar: probability · black tick: threshold · red: active"));
  const left = h("div", {}, h("img", { class: "crop", src: pictures.crop, alt: "model input" }),
    h("div", { class: "legend" }, "model input"));
  const active = h("div", { class: "active-list" });
  const texts = h("div", { class: "texts" },
    textColumn("Generated by the model", face.description, "generated",
      "this model has no language head: it generates no text"),
    textColumn("Template of the predicted AUs", face.template_description, "template", "no template text"));
  card.append(h("div", { class: "row" }, left, bars, h("div", { style: { flex: "2 1 480px" } },
    h("div", {}, h("strong", {}, "Active AUs: "), active), texts)));
  const overlayNames = Object.keys(pictures.overlays);
  if (overlayNames.length) {
    const tiles = overlayNames.map((name) => h("div", { class: "overlay", "data-au": name },
      h("img", { src: pictures.overlays[name], alt: `attention for ${name}` }), `${name} ${face.aus[name].toFixed(2)}`));
    card.append(h("div", { class: "legend" }, "attention of the model for each AU (blue low, red high)"),
      h("div", { class: "overlays" }, tiles));
  }
  return card;
}

function textColumn(title, text, kind, missing) {
  const col = h("div", { class: "col", "data-text": kind }, h("h4", {}, title));
  col.append(h("div", { class: "text-body" }));
  fillText(col, text, missing);
  return col;
}

function fillText(col, text, missing) {
  const body = col.querySelector(".text-body");
  if (!text) { body.replaceChildren(h("p", { class: "muted" }, missing)); return; }
  const local = Object.entries(text.local || {});
  body.replaceChildren(h("p", { class: "global" }, text.global || "(no global sentence)"));
  if (local.length) {
    body.append(h("details", {}, h("summary", {}, "per-AU sentences"),
      h("dl", {}, local.map(([au, sentence]) => [h("dt", {}, au), h("dd", {}, sentence)]))));
  }
}

// Re-label every face at the current thresholds: bars and chips at once (client side), then the
// template text and the authoritative active AUs from the server (no model run).
function applyThresholds(initial) {
  if (!state.info) return;
  const thresholds = currentThresholds();
  const labels = state.info.labels;
  $("threshold-value").textContent = state.threshold === null ? "checkpoint" : state.threshold.toFixed(2);
  if (state.threshold === null) {
    const mean = thresholds.reduce((a, b) => a + b, 0) / thresholds.length;
    $("threshold").value = mean.toFixed(2);
  }
  document.querySelectorAll(".face-card").forEach((card) => {
    const [i, f] = card.dataset.face.split(":").map(Number);
    const face = state.images[i].record.faces[f];
    const active = labels.filter((name, k) => face.aus[name] >= thresholds[k]);
    paintFace(card, face, thresholds, initial ? face.active : active);
  });
  const download = $("download");
  download.href = state.id ? `/api/download/${state.id}` + (state.threshold === null ? "" : `?threshold=${state.threshold}`) : "#";
  if (!initial && state.id) {
    clearTimeout(state.relabelTimer);
    state.relabelTimer = setTimeout(fetchRelabel, 150);
  }
}

function paintFace(card, face, thresholds, active) {
  const on = new Set(active);
  state.info.labels.forEach((name, k) => {
    const row = card.querySelector(`.au-row[data-au="${name}"]`);
    row.classList.toggle("active", on.has(name));
    row.querySelector(".tick").style.left = `calc(${100 * thresholds[k]}% - 1px)`;
    const tile = card.querySelector(`.overlay[data-au="${name}"]`);
    if (tile) tile.classList.toggle("active", on.has(name));
  });
  card.querySelector(".active-list").replaceChildren(...(active.length
    ? active.map((name) => h("span", { class: "chip on" }, name)) : [h("span", { class: "muted" }, "none")]));
}

async function fetchRelabel() {
  const seq = ++state.relabelSeq;
  const query = state.threshold === null ? "" : `?threshold=${state.threshold}`;
  const result = await callServer(`/api/relabel/${state.id}${query}`, {}, 30000);
  if (seq !== state.relabelSeq) return;  // a newer slider position is on its way
  if (!result.ok) { showFailure(message, result); return; }
  result.data.records.forEach((record, i) => {
    const image = state.images[i];
    image.record = record;
    record.faces.forEach((face, f) => {
      const card = document.querySelector(`.face-card[data-face="${i}:${f}"]`);
      if (!card) return;
      paintFace(card, face, currentThresholds(), face.active);
      fillText(card.querySelector('[data-text="template"]'), face.template_description, "no template text");
    });
  });
  document.body.dataset.relabelled = String(seq);
}

function setThreshold(value) {
  state.threshold = value;
  applyThresholds(false);
}

init();
