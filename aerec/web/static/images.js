// The image-search page: pick an indexed image (POST /images/similar) or upload one
// (POST /images/search), and see its neighbours with their scores and thumbnails (GET /images/file/{id}).
"use strict";

(() => {
  const { el, $, getJSON, postJSON, request, showStatus, showError, score } = Aerec;
  const PAGE = 24;
  let total = 0, offset = 0, thumbnails = true, current = null, maxK = 100;
  let urls = { picker: [], results: [], query: [] }; // object URLs to release when a view is redrawn

  const fileUrl = (id) => "/images/file/" + String(id).split("/").map(encodeURIComponent).join("/");

  function release(group) {
    urls[group].forEach((u) => URL.revokeObjectURL(u));
    urls[group] = [];
  }

  // an indexed image's picture, or its id where the server has no folder to read pictures from
  function picture(id, group, size) {
    if (!thumbnails) return el("span", { class: "thumb missing", text: String(id) });
    const img = el("img", { alt: String(id) });
    thumb(img, id, group, size);
    return img;
  }

  // thumbnails go through fetch, so they carry the API key like every other request
  async function thumb(img, id, group, size) {
    img.classList.add("thumb");
    try {
      const blob = await (await request(fileUrl(id) + (size ? `?size=${size}` : ""))).blob();
      const url = URL.createObjectURL(blob);
      urls[group].push(url);
      img.addEventListener("load", () => img.classList.toggle("small", img.naturalWidth < 96), { once: true });
      img.src = url;
    } catch (err) {
      img.classList.add("missing");
      img.title = err.message;
    }
  }

  function k() {
    const value = parseInt($("k").value, 10);
    return Math.max(1, Math.min(Number.isFinite(value) ? value : 12, maxK));
  }

  async function loadPicker() {
    const page = await getJSON(`/images/ids?offset=${offset}&limit=${PAGE}`);
    total = page.total;
    release("picker");
    $("picker").replaceChildren(...page.ids.map((id) => {
      return el("button", { type: "button", title: String(id), class: id === current ? "current" : null,
                             dataset: { id: JSON.stringify(id) }, onclick: () => similar(id) },
                picture(id, "picker", 96));
    }));
    const pages = Math.max(1, Math.ceil(total / PAGE));
    $("page-info").textContent = `page ${Math.floor(offset / PAGE) + 1} of ${pages}`;
    $("prev").disabled = offset === 0;
    $("next").disabled = offset + PAGE >= total;
  }

  function showQuery(title, note) {
    $("query").hidden = false;
    $("query-title").textContent = title;
    $("query-note").textContent = note;
  }

  function showResults(items) {
    release("results");
    const best = Math.max(...items.map((x) => x.score), 1e-9);
    $("results").replaceChildren(...items.map((x) => {
      const width = Math.max(0, Math.min(100, (100 * x.score) / best));
      return el("li", { class: "card", title: `${x.id}: click for its neighbours`,
                        dataset: { id: JSON.stringify(x.id), score: String(x.score), rank: String(x.rank) },
                        onclick: () => similar(x.id) },
        el("div", { class: "frame" }, picture(x.id, "results", 240)),
        el("div", { class: "meta" },
          el("div", { class: "top" }, el("span", { class: "rank", text: `#${x.rank}` }),
                                      el("span", { class: "score", text: score(x.score) })),
          el("div", { class: "bar-meter" }, el("span", { style: { width: `${width.toFixed(1)}%` } })),
          el("div", { class: "name", text: String(x.id) })));
    }));
    $("empty").hidden = items.length > 0;
  }

  function markCurrent() {
    for (const button of $("picker").children) {
      button.classList.toggle("current", JSON.parse(button.dataset.id) === current);
    }
  }

  async function similar(id) {
    current = id;
    markCurrent();
    showStatus("Searching…");
    try {
      const body = await postJSON("/images/similar", { id, k: k() });
      release("query");
      $("query-image").hidden = !thumbnails;
      if (thumbnails) thumb($("query-image"), id, "query", 240);
      showQuery(String(id), `its ${body.items.length} nearest indexed images (itself left out)`);
      showResults(body.items);
      showStatus("");
    } catch (err) {
      showError(err);
    }
  }

  async function upload(file) {
    if (!file) return;
    current = null;
    markCurrent();
    showStatus(`Searching with ${file.name}…`);
    const form = new FormData();
    form.append("file", file);
    form.append("k", String(k()));
    try {
      const body = await (await request("/images/search", { method: "POST", form })).json();
      release("query");
      const url = URL.createObjectURL(file);
      urls.query.push(url);
      const img = $("query-image");
      img.hidden = false;
      img.classList.remove("missing");
      img.addEventListener("load", () => img.classList.toggle("small", img.naturalWidth < 96), { once: true });
      img.src = url;
      showQuery(file.name, `your photo: its ${body.items.length} nearest indexed images`);
      showResults(body.items);
      showStatus("");
    } catch (err) {
      showError(err);
    }
  }

  async function start() {
    try {
      const meta = await Aerec.loadHeader();
      thumbnails = meta.thumbnails !== false;
      maxK = meta.limits.max_k;
      $("k").max = String(maxK);
      $("no-pictures").hidden = thumbnails;
      await loadPicker();
      showStatus("");
    } catch (err) {
      showError(err);
    }
  }

  $("file").addEventListener("change", (event) => upload(event.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    upload(event.dataTransfer.files[0]);
  });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadPicker().catch(showError); });
  $("next").addEventListener("click", () => { offset += PAGE; loadPicker().catch(showError); });
  $("shuffle").addEventListener("click", () => {
    offset = Math.floor(Math.random() * Math.max(1, total - PAGE + 1));
    loadPicker().catch(showError);
  });
  Aerec.setUpKeyForm(start);
  start();
})();
