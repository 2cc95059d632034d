// Shared helpers of the demo pages: calls that never hang or throw, messages, element building.
"use strict";

// POST/GET `url`; resolves to {ok, status, data} or {ok: false, error} — never rejects.
// A request that takes longer than `timeoutMs` is aborted with a visible reason.
async function callServer(url, options = {}, timeoutMs = 300000) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(url, { ...options, signal: controller.signal });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const error = (data && data.error) || `the server answered ${response.status} ${response.statusText}`;
      return { ok: false, status: response.status, error };
    }
    return { ok: true, status: response.status, data };
  } catch (e) {
    if (e.name === "AbortError") {
      return { ok: false, status: 0, error: `no answer from the server within ${Math.round(timeoutMs / 1000)} s` };
    }
    return { ok: false, status: 0, error: "cannot reach the server (is it still running?)" };
  } finally {
    clearTimeout(timer);
  }
}

// Show `text` in the message box `box` (kind: info | ok | busy | error); empty text hides it.
function showMessage(box, text, kind = "info") {
  box.className = "message" + (text ? ` show ${kind}` : "");
  box.textContent = text || "";
  box.dataset.kind = text ? kind : "";
}

// The message of a failed call: 429 (another request runs) is shown as "busy", everything else as an error.
function showFailure(box, result) {
  showMessage(box, result.error, result.status === 429 ? "busy" : "error");
}

// h("div", {class: "x", onclick: f}, child, "text", ...) → element
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
