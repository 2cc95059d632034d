// retrieval serve page: sentence → gallery images (with explanations); gallery image → captions; held-out R@K.
"use strict";

const state = { info: null, offset: 0, pageSize: 24, picked: null, busy: false };
const $ = (id) => document.getElementById(id);

async function init() {
  const result = await callServer("/api/info", {}, 30000);
  if (!result.ok) { showFailure($("message"), result); return; }
  const info = state.info = result.data;
  $("model-line").textContent = `${info.model} · ${info.count} gallery images (${info.backend} search)` +
    (info.rerank ? ` · re-ranked by ${info.rerank} (top ${info.shortlist})` : "") +
    (info.captions ? ` · caption bank of ${info.captions} captions` : " · no caption bank");
  const limits = info.limits;
  $("limits").textContent = `A sentence of up to ${limits.max_query_chars.toLocaleString("en")} characters; ` +
    `explanations for up to ${limits.max_explained} hits. Everything runs on this computer.`;
  $("bank-line").textContent = info.captions ? `captions from ${info.captions_source}` :
    "no caption bank (start the demo with --captions INDEX)";
  $("heldout-n").value = Math.min(100, info.count);
  $("heldout-n").max = Math.min(limits.max_heldout, info.count);
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  $("query").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); search(); }
  });
  $("prev").addEventListener("click", () => loadGallery(state.offset - state.pageSize));
  $("next").addEventListener("click", () => loadGallery(state.offset + state.pageSize));
  $("heldout").addEventListener("click", heldout);
  loadGallery(0);
}

function working(box, text) {
  box.className = "message show info"; box.dataset.kind = "info";
  box.replaceChildren(h("span", { class: "spinner" }), text);
}

function picture(row, alt) {
  return h("img", { src: `/api/picture/${row}`, alt, loading: "lazy" });
}

async function search() {
  const box = $("message");
  const query = $("query").value;
  const topk = parseInt($("topk").value, 10);
  $("search").disabled = true;
  working(box, "searching…");
  const result = await callServer("/api/search", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ query, topk, explain: $("explain").checked }) });
  $("search").disabled = false;
  if (!result.ok) { showFailure(box, result); return; }
  const data = result.data;
  $("scored-by").textContent = `scores: ${data.scored_by}`;
  const hits = $("hits");
  hits.replaceChildren(...data.hits.map((hit) => hitCard(hit)));
  const explained = data.hits.filter((hit) => hit.explanation).length;
  let text = `${data.hits.length} images for “${data.query}”`;
  if (explained) text += ` · ${explained} explained (boxes: the model's most salient regions; red words: matched)`;
  if (data.note) text += ` · ${data.note}`;
  showMessage(box, text, data.note ? "busy" : "ok");
}

function hitCard(hit) {
  const card = h("div", { class: "hit", "data-row": hit.row, "data-id": hit.id });
  const explanation = hit.explanation;
  if (explanation && explanation.png) card.append(h("img", { src: explanation.png, alt: `explanation of image ${hit.id}`, class: "explained" }));
  else if (hit.picture) card.append(picture(hit.row, `image ${hit.id}`));
  else card.append(h("div", { class: "no-picture" }, "no picture on this machine"));
  card.append(h("div", { class: "meta" }, h("span", { class: "rank" }, `#${hit.rank}`),
    h("span", {}, `image ${hit.id}`), h("span", { class: "score" }, `score ${hit.score.toFixed(3)}`)));
  if (explanation) {
    const matched = new Set(explanation.matched_words);
    card.append(h("div", { class: "words query-words" }, "matched: ",
      explanation.words.map((word) => h("span", { class: matched.has(word) ? "chip on" : "chip" }, word))));
  }
  card.append(h("button", { type: "button", class: "secondary", onclick: () => showCaptions(hit.row, hit.id) },
    "captions of this image"));
  return card;
}

async function loadGallery(offset) {
  if (!state.info) return;
  const count = state.info.count;
  offset = Math.max(0, Math.min(offset, Math.max(0, count - 1)));
  const result = await callServer(`/api/gallery?offset=${offset}&limit=${state.pageSize}`, {}, 30000);
  if (!result.ok) { showFailure($("captions-message"), result); return; }
  state.offset = offset;
  $("gallery-range").textContent = `images ${offset + 1}–${Math.min(offset + state.pageSize, count)} of ${count}`;
  $("prev").disabled = offset === 0;
  $("next").disabled = offset + state.pageSize >= count;
  $("gallery").replaceChildren(...result.data.rows.map((row) => h("button", {
    type: "button", class: "thumb" + (row.row === state.picked ? " picked" : ""), "data-row": row.row,
    title: `image ${row.id}`, onclick: () => showCaptions(row.row, row.id) },
    row.picture ? picture(row.row, `image ${row.id}`) : h("div", { class: "no-picture" }, "no picture"),
    h("div", { class: "label" }, `image ${row.id}`))));
}

async function showCaptions(row, id) {
  const box = $("captions-message");
  state.picked = row;
  document.querySelectorAll(".thumb").forEach((t) => t.classList.toggle("picked", Number(t.dataset.row) === row));
  working(box, `finding the best captions for image ${id}…`);
  const result = await callServer(`/api/captions/${row}?topk=5`);
  if (!result.ok) { showFailure(box, result); $("captions").replaceChildren(); return; }
  const data = result.data;
  const own = data.captions.filter((c) => c.own).length;
  $("captions").replaceChildren(picture(row, `image ${data.id}`),
    h("ol", {}, data.captions.map((c) => h("li", { class: c.own ? "own" : "" },
      h("span", { class: "score" }, c.score.toFixed(3)), h("span", { class: "text" }, c.text),
      c.own ? " ✓ one of its own captions" : ""))));
  showMessage(box, `best captions for image ${data.id}: ${own} of ${data.captions.length} are its own`, "ok");
  $("captions").scrollIntoView({ block: "nearest" });
}

async function heldout() {
  const box = $("heldout-message");
  const n = parseInt($("heldout-n").value, 10);
  if (!Number.isFinite(n)) { showMessage(box, "type how many held-out queries to run", "error"); return; }
  $("heldout").disabled = true;
  working(box, `searching ${n} held-out captions…`);
  const result = await callServer(`/api/heldout?n=${n}`);
  $("heldout").disabled = false;
  if (!result.ok) { showFailure(box, result); $("heldout-result").replaceChildren(); return; }
  const r = result.data;
  const rows = [h("tr", {}, h("th", {}, ""), h("th", {}, "R@1"), h("th", {}, "R@5"), h("th", {}, "R@10")),
    h("tr", { class: "final" }, h("th", {}, state.info.rerank ? "re-ranked" : "search"),
      [r.r1, r.r5, r.r10].map((v) => h("td", {}, v.toFixed(1))))];
  if (r.first_stage) {
    rows.push(h("tr", {}, h("th", {}, "first stage"), [r.first_stage.r1, r.first_stage.r5, r.first_stage.r10]
      .map((v) => h("td", {}, v.toFixed(1)))));
  }
  const parts = [h("table", {}, rows)];
  if (r.shortlist_recall !== undefined) {
    parts.push(h("div", { class: "muted" },
      `the shortlist of ${r.shortlist} holds the right image for ${r.shortlist_recall.toFixed(1)} % of the queries`));
  }
  $("heldout-result").replaceChildren(...parts);
  showMessage(box, `held-out ${r.queries} queries: R@1 ${r.r1.toFixed(1)}  R@5 ${r.r5.toFixed(1)}  R@10 ${r.r10.toFixed(1)} ` +
    `(ties counted against the model; chance R@1 is ${(100 / state.info.count).toFixed(1)})`, "ok");
}

init();
