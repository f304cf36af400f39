// The recommender page: a known user (POST /recommend) or a typed history (POST /recommend/history),
// the results with the items' titles (GET /items), and each result's similar items (POST /similar-items).
"use strict";

(() => {
  const { el, $, getJSON, postJSON, showStatus, showError, score } = Aerec;
  let nUsers = 0, maxK = 100, hasTitles = false;
  const titles = new Map(); // String(item id) -> title or null, fetched once per item (a model's ids are all
                            // numbers or all strings, so 50 and "50" are one item: the server reads them alike)

  function k() {
    const value = parseInt($("k").value, 10);
    return Math.max(1, Math.min(Number.isFinite(value) ? value : 10, maxK));
  }

  const keyOf = (id) => String(id);

  async function fetchTitles(ids) {
    const missing = [...new Set(ids.map(keyOf))].filter((key) => !titles.has(key));
    if (!missing.length) return;
    const query = missing.map((id) => "ids=" + encodeURIComponent(id)).join("&");
    const body = await getJSON("/items?" + query);
    body.items.forEach((x) => titles.set(keyOf(x.item), x.title));
  }

  const titleOf = (id) => titles.get(keyOf(id)) || `item ${id}`;

  function showList(heading, note, items) {
    $("heading").hidden = false;
    $("title").textContent = heading;
    $("note").textContent = note;
    const best = Math.max(...items.map((x) => Math.abs(x.score)), 1e-9);
    $("results").replaceChildren(...items.map((x) => {
      const width = Math.max(0, Math.min(100, (100 * x.score) / best));
      return el("li", { dataset: { item: JSON.stringify(x.item), score: String(x.score), rank: String(x.rank) } },
        el("span", { class: "rank", text: String(x.rank) }),
        el("div", {},
          el("div", { class: "title", text: titleOf(x.item), title: titleOf(x.item) }),
          el("div", { class: "id", text: `item ${x.item}` })),
        el("div", { class: "score" }, score(x.score),
          el("div", { class: "bar-meter" }, el("span", { style: { width: `${width.toFixed(1)}%` } }))),
        el("button", { type: "button", text: "Similar", title: `Items like ${titleOf(x.item)}`,
                       onclick: () => similar(x.item) }));
    }));
    $("results").hidden = items.length === 0;
    $("empty").hidden = items.length > 0;
    if (!items.length) $("empty").textContent = "Nothing to recommend: every item is left out.";
  }

  function showBasedOn(label, known, unknown = [], more = 0) {
    const box = $("based-on");
    box.hidden = !known.length && !unknown.length;
    box.replaceChildren(el("span", { class: "based-on-label", text: label }),
      ...known.map((id) => el("span", { class: "chip", text: titleOf(id), title: `item ${id}` })),
      ...unknown.map((id) => el("span", { class: "chip unknown", text: `${id}: unknown`, title: "Not an item of the model: not used" })),
      more > 0 ? el("span", { class: "based-on-label", text: `and ${more.toLocaleString("en")} more` }) : null);
  }

  async function recommendUser(user) {
    showStatus("Recommending…");
    try {
      const body = await postJSON("/recommend", { user, k: k(), exclude_seen: $("exclude").checked });
      const seen = await getJSON(`/users/${encodeURIComponent(String(body.user))}/items?limit=${Math.min(8, maxK)}`);
      await fetchTitles([...body.items.map((x) => x.item), ...seen.items]);
      showList(`Recommendations for user ${body.user}`, `top ${body.items.length}`, body.items);
      showBasedOn(`User ${body.user} has:`, seen.items, [], seen.total - seen.items.length);
      showStatus("");
    } catch (err) {
      showError(err);
    }
  }

  function historyIds() {
    return $("history").value.split(/[\s,;]+/).map((v) => v.trim()).filter(Boolean);
  }

  async function recommendHistory() {
    const items = historyIds();
    if (!items.length) { showError("Type at least one item id."); return; }
    showStatus("Recommending…");
    try {
      const body = await postJSON("/recommend/history", { items, k: k(), exclude_seen: $("exclude").checked });
      const unknown = new Set(body.ignored.map(String));
      const known = [...new Set(items.filter((id) => !unknown.has(id)))];
      await fetchTitles([...body.items.map((x) => x.item), ...known]);
      showList("Recommendations for a new user", `top ${body.items.length}, from ${known.length} known item(s)`, body.items);
      showBasedOn("From the history:", known, [...unknown]);
      showStatus("");
    } catch (err) {
      showError(err);
    }
  }

  async function similar(item) {
    showStatus("Finding similar items…");
    try {
      const body = await postJSON("/similar-items", { item, k: k() });
      await fetchTitles([item, ...body.items.map((x) => x.item)]);
      showList(`Items like ${titleOf(item)}`, `the ${body.items.length} most similar`, body.items);
      $("based-on").hidden = true;
      showStatus("");
    } catch (err) {
      showError(err);
    }
  }

  let findTimer = null;
  function find() {
    clearTimeout(findTimer);
    const q = $("find").value.trim();
    if (!q) { $("suggestions").replaceChildren(); return; }
    findTimer = setTimeout(async () => {
      try {
        const body = await getJSON(`/items/search?q=${encodeURIComponent(q)}&limit=12`);
        body.items.forEach((x) => titles.set(keyOf(x.item), x.title));
        $("suggestions").replaceChildren(...(body.items.length ? body.items.map((x) =>
          el("li", {}, el("button", { type: "button", onclick: () => addToHistory(x.item) },
            x.title, el("span", { class: "id", text: `item ${x.item}` })))) :
          [el("li", { class: "hint", text: "No title holds that." })]));
      } catch (err) {
        showError(err);
      }
    }, 200);
  }

  function addToHistory(item) {
    const ids = historyIds();
    if (!ids.includes(String(item))) ids.push(String(item));
    $("history").value = ids.join(", ");
    $("find").value = "";
    $("suggestions").replaceChildren();
    $("find").focus();
  }

  async function start() {
    try {
      const meta = await Aerec.loadHeader();
      maxK = meta.limits.max_k;
      hasTitles = (meta.titles || 0) > 0;
      $("k").max = String(Math.min(maxK, 100));
      $("find-box").hidden = !hasTitles;
      const page = await getJSON("/users?limit=" + Math.min(200, maxK));
      nUsers = page.total;
      $("user-ids").replaceChildren(...page.ids.map((id) => el("option", { value: String(id) })));
      $("user-hint").textContent = `${nUsers.toLocaleString("en")} users`;
      showStatus(hasTitles ? "" : "No item titles were given to this server (aerec serve --titles FILE): items show as ids.");
    } catch (err) {
      showError(err);
    }
  }

  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("user").value.trim();
    if (user) recommendUser(user); else showError("Type or pick a user id.");
  });
  $("random-user").addEventListener("click", async () => {
    try {
      const page = await getJSON(`/users?offset=${Math.floor(Math.random() * nUsers)}&limit=1`);
      $("user").value = String(page.ids[0]);
      recommendUser(page.ids[0]);
    } catch (err) {
      showError(err);
    }
  });
  $("history-form").addEventListener("submit", (event) => { event.preventDefault(); recommendHistory(); });
  $("find").addEventListener("input", find);
  Aerec.setUpKeyForm(start);
  start();
})();
