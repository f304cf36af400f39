// What both pages share: requests to this server (with the API key when it wants one), safe DOM
// building (text only: ids and titles never become markup), the header, and status messages.
"use strict";

const Aerec = (() => {
  const KEY = "aerec.apiKey"; // sessionStorage: this tab only, gone when it closes

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function headers() {
    const key = sessionStorage.getItem(KEY);
    return key ? { "X-API-Key": key } : {};
  }

  async function request(path, { method = "GET", json, form } = {}) {
    const init = { method, headers: headers(), credentials: "same-origin", cache: "no-store" };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.body = form;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "The server does not answer.");
    }
    if (response.status === 401) {
      askForKey(sessionStorage.getItem(KEY) ? "That key is not accepted." : "");
      throw new ApiError(401, "This server wants an API key: type it in at the top right.");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (err) { /* not JSON */ }
      throw new ApiError(response.status, detail);
    }
    return response;
  }

  const getJSON = async (path) => (await request(path)).json();
  const postJSON = async (path, json) => (await request(path, { method: "POST", json })).json();

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "style") Object.assign(node.style, value); // CSSOM: allowed by the page's CSP
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);

  function showStatus(text, kind = "busy") {
    const box = $("status");
    box.className = "status" + (text ? " " + kind : "");
    box.textContent = text || "";
  }

  function showError(err) {
    showStatus(err instanceof ApiError || err instanceof Error ? err.message : String(err), "error");
  }

  // --- the API key: asked for only when the server answers 401 --------------------------------
  let onKey = () => {};

  function askForKey(message) {
    const form = $("key-form");
    form.hidden = false;
    $("key-message").textContent = message;
    $("key").focus();
  }

  function setUpKeyForm(retry) {
    onKey = retry;
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY, key);
      $("key").value = "";
      $("key-form").hidden = true;
      onKey();
    });
  }

  async function loadHeader() {
    const meta = await getJSON("/metadata");
    const sizes = [];
    if (meta.n_users != null) sizes.push(`${meta.n_users.toLocaleString("en")} users`);
    if (meta.n_items != null) sizes.push(`${meta.n_items.toLocaleString("en")} items`);
    if (meta.n_images != null) sizes.push(`${meta.n_images.toLocaleString("en")} images`);
    $("model").replaceChildren(el("b", { text: meta.model }), ` · ${sizes.join(" · ")}`);
    return meta;
  }

  function score(value) {
    return Number(value).toFixed(3);
  }

  return { ApiError, request, getJSON, postJSON, el, $, showStatus, showError, setUpKeyForm, loadHeader, score };
})();
