"""The pages ``aerec serve`` shows in a browser: their routes and the thumbnails' confinement to the image
folder (in process, with TestClient), then each page in a real headless Chromium driven by Selenium,
checked against the JSON API's answers, with a screenshot kept as a test artefact.

Screenshots go to ``$AEREC_TEST_ARTEFACTS`` (default: pytest's temporary directory; the docs' are
made by ``docs/screenshots.py`` on larger models). Without Chromium and
chromedriver (Debian's ``chromium`` and ``chromium-driver``) the browser tests fail under CI (``CI=true``)
and are skipped elsewhere."""
from __future__ import annotations

import gc
import io
import os
import re
import shutil
import time
import urllib.parse
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import aerec
import browser as browsers
from aerec.exceptions import InvalidParameterError, MissingColumnError, OutsideFolderError
from aerec.server import create_app
from aerec.web import confined_file, item_titles, page_html, thumbnail_png

# --- data: real MNIST digits as files, a real recommender on ML-100K ------------------------------------
@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """48 MNIST test digits (0-9, about five each) as PNG files, three in a subfolder; beside the folder,
    ``secret.png``, and inside it ``link.png``, a symlink to that file outside the folder."""
    base = tmp_path_factory.mktemp("pages")
    folder = base / "digits"
    (folder / "more").mkdir(parents=True)
    data = aerec.datasets.mnist(download=False)
    keep = np.concatenate([np.flatnonzero(data.labels == d)[:5] for d in range(10)])[:47]
    for n, j in enumerate(keep):
        where = folder / "more" if n < 3 else folder
        Image.fromarray(data.images[j]).save(where / f"{data.labels[j]}-{j}.png")
    Image.fromarray(255 - data.images[keep[-1]]).save(base / "secret.png")
    (folder / "link.png").symlink_to(base / "secret.png")
    return folder


@pytest.fixture(scope="module")
def image_bundle(image_folder, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pages") / "images"
    aerec.ImageSearch(code_dim=8, filters=(8, 16), epochs=2, batch_size=32, verbose=0).fit(image_folder).save(path)
    return path


@pytest.fixture(scope="module")
def search(image_bundle):
    return aerec.load(image_bundle)


@pytest.fixture(scope="module")
def image_client(image_bundle):
    return TestClient(create_app(image_bundle, max_k=40))


@pytest.fixture(scope="module")
def rec_bundle(small_positives, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pages") / "ease"
    aerec.EASE(l2=30.0).fit(small_positives).save(path)
    return path


@pytest.fixture(scope="module")
def model(rec_bundle):
    return aerec.load(rec_bundle)


@pytest.fixture(scope="module")
def titles(ml100k):
    return ml100k.items[["item", "title"]]


@pytest.fixture(scope="module")
def rec_client(rec_bundle, titles):
    return TestClient(create_app(rec_bundle, titles=titles, max_k=50))


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


# --- the pages and their assets -----------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["images", "recommender"])
def test_each_page_is_served_with_local_assets_only(which, image_client, rec_client):
    client = image_client if which == "images" else rec_client
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert ("image search" if which == "images" else "recommendations") in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    links = [part.split('"')[1] for attr in ("src=", "href=") for part in page.text.split(attr)[1:]]
    assert len(links) >= 4 and all(link.startswith("/ui/") for link in links), links  # nothing from a CDN
    for link in links:
        asset = client.get(link)
        assert asset.status_code == 200 and asset.content, link
        content = asset.content.replace(b'xmlns="http://www.w3.org/2000/svg"', b"")  # a name, not a request
        assert b"http://" not in content and b"https://" not in content and b"//cdn" not in content, link
    # no inline script or handler: the page's CSP would block them
    assert "<script>" not in page.text and not re.search(r"\son\w+=", page.text) and "style=" not in page.text


def test_only_kinds_with_a_page_get_one():
    assert page_html("image search") and page_html("recommender")
    assert page_html("rating model") is None


def test_the_page_is_open_and_the_data_behind_the_key(rec_bundle, image_bundle, titles, search):
    for path, data_route in ((rec_bundle, "/users"), (image_bundle, "/images/ids"),
                             (image_bundle, f"/images/file/{search.index_.ids_.ids[3]}")):
        secured = TestClient(create_app(path, api_key="s3cret-key"))
        page = secured.get("/")
        assert page.status_code == 200 and "s3cret" not in page.text
        assert secured.get("/ui/common.js").status_code == 200 and "s3cret" not in secured.get("/ui/common.js").text
        assert secured.get(data_route).status_code == 401
        assert secured.get("/metadata").status_code == 401
        assert secured.get(data_route, headers={"X-API-Key": "s3cret-key"}).status_code == 200
        for dotted in ("/ui/../metadata", "/ui/%2e%2e/users", "/ui/./../images/ids"):  # sent as is, not normalised
            assert _raw_get(secured.app, dotted) == 401, dotted
        assert secured.head("/").status_code == 200
    # the page keeps the key in the tab's sessionStorage only, and sends it as the gate's header
    script = TestClient(create_app(rec_bundle)).get("/ui/common.js").text
    assert "sessionStorage" in script and "localStorage" not in script and '"X-API-Key"' in script


def _raw_get(app, path: str) -> int:
    """The status of a GET of ``path`` exactly as given (HTTP clients remove dot segments before sending)."""
    import asyncio

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    decoded = urllib.parse.unquote(path)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": decoded, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


# --- the small routes the pages read -------------------------------------------------------------------------
def test_users_and_image_ids_are_paged(rec_client, model, image_client, search):
    body = rec_client.get("/users", params={"offset": 5, "limit": 7}).json()
    assert body == {"total": len(model.users_), "offset": 5, "ids": model.users_.ids[5:12].tolist()}
    assert rec_client.get("/users", params={"offset": 10**6}).json()["ids"] == []
    assert len(rec_client.get("/users").json()["ids"]) == 50  # by default 100, or max_k when it is less
    r = rec_client.get("/users", params={"limit": 51})
    assert r.status_code == 422 and "limit of 50" in r.json()["detail"]
    body = image_client.get("/images/ids", params={"limit": 100 // 4}).json()
    assert body["total"] == len(search.index_) == 48 and body["ids"] == search.index_.ids_.ids[:25].tolist()
    assert image_client.get("/images/ids", params={"offset": -1}).status_code == 422


def test_a_users_training_items(rec_client, model, small_positives):
    user = int(model.users_.ids[4])
    body = rec_client.get(f"/users/{user}/items", params={"limit": 5}).json()
    had = small_positives.loc[small_positives["user"] == user, "item"]
    assert body["user"] == user and body["total"] == len(had) > 5
    assert len(body["items"]) == 5 and set(body["items"]) <= set(had.tolist())
    assert set(rec_client.get(f"/users/{user}/items", params={"limit": 50}).json()["items"]) == set(had.tolist())
    r = rec_client.get("/users/31415926/items")
    assert r.status_code == 404 and "31415926" in r.json()["detail"]
    assert rec_client.get(f"/users/{user}/items", params={"limit": 51}).status_code == 422


def test_items_have_their_titles(rec_client, model, ml100k):
    wanted = [int(v) for v in model.items_.ids[:5]]
    body = rec_client.get("/items", params={"ids": [str(v) for v in wanted]}).json()  # "50" finds 50
    expected = ml100k.items.set_index("item")["title"]
    assert body["items"] == [{"item": v, "title": expected[v]} for v in wanted]
    r = rec_client.get("/items", params={"ids": [wanted[0], 999999]})
    assert r.status_code == 404 and "999999" in r.json()["detail"]
    assert rec_client.get("/items").status_code == 422  # no ids
    assert rec_client.get("/metadata").json()["titles"] == len(model.items_)


def test_items_are_found_by_title(rec_client, model):
    found = rec_client.get("/items/search", params={"q": "STAR", "limit": 5}).json()["items"]
    assert 1 <= len(found) <= 5 and all("star" in x["title"].lower() for x in found)
    assert all(x["item"] in model.items_ for x in found)
    assert rec_client.get("/items/search", params={"q": "no title holds this"}).json() == {"items": []}
    assert rec_client.get("/items/search", params={"q": ""}).status_code == 422


def test_without_titles_items_show_as_ids(rec_bundle, model):
    client = TestClient(create_app(rec_bundle))
    item = int(model.items_.ids[0])
    assert client.get("/items", params={"ids": item}).json() == {"items": [{"item": item, "title": None}]}
    assert client.get("/items/search", params={"q": "a"}).json() == {"items": []}
    assert client.get("/metadata").json()["titles"] == 0


def test_a_titles_table_is_checked_at_start(rec_bundle, image_bundle, model, titles, tmp_path):
    with pytest.raises(MissingColumnError, match="name.*columns are \\['item', 'title'\\]"):
        create_app(rec_bundle, titles=titles, title_column="name")
    with pytest.raises(aerec.exceptions.DataValidationError, match="none of its 2 'item' ids"):
        create_app(rec_bundle, titles=titles.head(2).assign(item=["x", "y"]))
    titles.to_csv(tmp_path / "items.csv", index=False)  # a file works as the DataFrame does
    shown = item_titles(tmp_path / "items.csv", model.items_)
    assert shown.to_dict() == titles.set_index("item")["title"][model.items_.ids].to_dict()
    with pytest.raises(InvalidParameterError, match="titles are for recommender bundles"):
        create_app(image_bundle, titles=titles)


def test_aerec_serve_passes_the_page_options(rec_bundle, titles, image_bundle, image_folder, tmp_path, monkeypatch):
    """``aerec serve --titles/--images`` reach the app through the environment ``app_from_env`` reads."""
    import subprocess
    import sys

    titles.to_csv(tmp_path / "items.csv", index=False)
    port = browsers.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aerec.cli", "serve", str(rec_bundle), "--port", str(port),
                             "--titles", str(tmp_path / "items.csv")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/items", params={"ids": [50]}, timeout=2).json()
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"aerec serve did not start: {proc.stdout.read().decode()[-2000:]}")
                time.sleep(0.2)
        assert body == {"items": [{"item": 50, "title": "Star Wars (1977)"}]}
        assert "<title>aerec · recommendations</title>" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # --images: another folder with the same files serves them; the default is the folder fitted on
    copy = tmp_path / "copy"
    shutil.copytree(image_folder, copy, symlinks=True)
    (copy / "more" / next(p.name for p in (image_folder / "more").iterdir())).unlink()
    from aerec.server import app_from_env

    monkeypatch.setenv("AEREC_BUNDLE", str(image_bundle))
    monkeypatch.setenv("AEREC_IMAGES", str(copy))
    client = TestClient(app_from_env())
    gc.unfreeze()  # app_from_env freezes what the process holds, for a serving process; this one goes on testing
    gone = next(i for i in aerec.load(image_bundle).index_.ids_.ids if i.startswith("more/") and not (copy / i).exists())
    assert client.get(f"/images/file/{gone}").status_code == 404  # read from the copy, where it is missing
    monkeypatch.delenv("AEREC_IMAGES")
    default = TestClient(app_from_env())
    gc.unfreeze()
    assert default.get(f"/images/file/{gone}").status_code == 200  # the fitted folder has it


# --- thumbnails -------------------------------------------------------------------------------------------------
def test_a_thumbnail_is_the_indexed_file(image_client, image_folder, search):
    image_id = next(i for i in search.index_.ids_.ids if i.startswith("more/"))  # an id with a slash
    r = image_client.get(f"/images/file/{image_id}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    shown = np.asarray(Image.open(io.BytesIO(r.content)))
    np.testing.assert_array_equal(shown, np.asarray(Image.open(image_folder / image_id)))  # 28 px: not enlarged
    assert image_client.get(f"/images/file/{image_id}", params={"size": 8}).status_code == 422  # below 16
    assert image_client.get("/metadata").json()["thumbnails"] is True


def test_thumbnails_are_scaled_down_keeping_the_aspect(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (300, 600, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.jpg", quality=90)
    small = Image.open(io.BytesIO(thumbnail_png(tmp_path / "photo.jpg", max_side=120)))
    assert small.format == "PNG" and small.size == (120, 60) and small.mode == "RGB"
    with pytest.raises(aerec.exceptions.ImageTooLargeError, match="600 x 300 pixels"):
        thumbnail_png(tmp_path / "photo.jpg", max_pixels=1000)
    (tmp_path / "fake.png").write_bytes(b"not an image at all")
    with pytest.raises(aerec.exceptions.DataValidationError, match="fake.png: not a decodable image"):
        thumbnail_png(tmp_path / "fake.png")


@pytest.mark.parametrize("url", [
    "/images/file/%2e%2e/%2e%2e/%2e%2e/etc/passwd",  # encoded dot segments
    "/images/file/..%2F..%2F..%2Fetc%2Fpasswd",      # encoded slashes too
    "/images/file//etc/passwd",                      # an absolute path
    "/images/file/%2Fetc%2Fpasswd",
    "/images/file/secret.png",                       # a file beside the folder, by a name that is not indexed
    "/images/file/..%2Fsecret.png",
    "/images/file/more/..%2F..%2Fsecret.png",
])
def test_files_outside_the_index_are_not_found(image_client, url):
    r = image_client.get(url)
    assert r.status_code == 404, (url, r.status_code)
    assert "unknown image id" in r.json()["detail"] and b"root:" not in r.content and b"PNG" not in r.content


def test_an_indexed_symlink_out_of_the_folder_is_refused(image_client, search):
    assert "link.png" in search.index_.ids_  # fit followed it: it is indexed ...
    r = image_client.get("/images/file/link.png")
    assert r.status_code == 403 and "outside the image folder" in r.json()["detail"]  # ... but never served
    assert b"PNG" not in r.content


def test_ids_that_climb_out_of_the_folder_are_refused(image_folder, tmp_path, digits_array):
    """Ids given at fit are any strings: ``..`` and absolute ones are refused even though they are indexed."""
    secret = image_folder.parent / "secret.png"
    ids = ["../secret.png", str(secret), "more/../../secret.png", "ok.png"]
    shutil.copy(secret, tmp_path / "ok.png")
    aerec.ImageSearch(code_dim=4, filters=(8,), epochs=1, verbose=0).fit(digits_array[:4], ids=ids).save(tmp_path / "b")
    client = TestClient(create_app(tmp_path / "b", images_root=tmp_path))
    for image_id in ids[:3]:
        assert image_id in aerec.load(tmp_path / "b").index_.ids_
        r = client.get("/images/file/" + urllib.parse.quote(image_id, safe=""))
        assert r.status_code == 403 and "outside the image folder" in r.json()["detail"], (image_id, r.text)
    assert client.get("/images/file/ok.png").status_code == 200  # the same file, inside, is served
    # fitted on an array, without images_root: no folder to read from
    plain = TestClient(create_app(tmp_path / "b"))
    r = plain.get("/images/file/ok.png")
    assert r.status_code == 404 and "--images" in r.json()["detail"]
    assert plain.get("/metadata").json()["thumbnails"] is False


@pytest.fixture(scope="module")
def digits_array():
    data = aerec.datasets.mnist(download=False)
    return data.images[:8]


def test_confined_file(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"x")
    (tmp_path / "out.png").write_bytes(b"o")
    (root / "out-dir").symlink_to(tmp_path, target_is_directory=True)
    (root / "in-link.png").symlink_to(root / "a" / "x.png")
    assert confined_file(root, "a/../a/x.png") == (root / "a" / "x.png").resolve()
    assert confined_file(root, "in-link.png") == (root / "a" / "x.png").resolve()  # a symlink within is fine
    for bad in ("../out.png", str(tmp_path / "out.png"), "out-dir/out.png", "a/../../out.png", "../nothing.png"):
        with pytest.raises(OutsideFolderError):
            confined_file(root, bad)
    for missing in ("a/none.png", "a", "a/x.png/more", "nul\x00.png"):
        with pytest.raises((FileNotFoundError, OutsideFolderError)):
            confined_file(root, missing)


def test_start_options_are_checked(image_bundle, rec_bundle, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        create_app(image_bundle, images_root=tmp_path / "missing")
    with pytest.raises(InvalidParameterError, match="images_root is for ImageSearch"):
        create_app(rec_bundle, images_root=tmp_path)


# --- a real browser -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium (Debian's) under Selenium; under CI its absence is a failure, not a skip."""
    absent = browsers.missing()
    if absent:
        message = (f"the browser tests need {', '.join(absent)}: apt-get install chromium chromium-driver "
                   f"(.ci/run does it)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    driver = browsers.chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def _wait(driver, condition, what: str, timeout: float = 20):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        status = driver.execute_script("return document.getElementById('status')?.textContent")
        pytest.fail(f"timed out waiting for {what}; the page's status line: {status!r}; "
                    f"console: {driver.get_log('browser')[-5:]}")


def _screenshot(driver, request, tmp_path_factory, name: str) -> Path:
    folder = Path(os.environ.get("AEREC_TEST_ARTEFACTS") or tmp_path_factory.getbasetemp() / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    image = Image.open(path)
    assert image.size[0] >= 1000 and len(np.unique(np.asarray(image.convert("L")))) > 16  # a page was drawn, not a blank
    return path


def _shown(driver, selector: str) -> list[dict]:
    """What the page shows in a result list: each entry's data (id, score, rank) and its visible text."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => ({data: {...e.dataset}, text: e.innerText,"
        " images: [...e.querySelectorAll('img')].map(i => i.complete && i.naturalWidth)}))", selector)


def _console_errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_image_page_in_a_browser(browser, image_bundle, image_folder, search, request, tmp_path_factory, tmp_path):
    from selenium.webdriver.common.by import By

    with browsers.Live(create_app(image_bundle)) as base:
        browser.get(base + "/")
        _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#picker button img[src]")) == 24,
              "the picker's 24 thumbnails")
        assert "48 images" in browser.find_element(By.ID, "model").text
        # click a photo: its neighbours, as POST /images/similar answers
        chosen = search.index_.ids_.ids[5]
        browser.find_element(By.CSS_SELECTOR, f"#picker button[title='{chosen}']").click()
        _wait(browser, lambda d: len(_shown(d, "#results .card")) == 12 and
              all(_shown(d, "#results .card")[-1]["images"]), "12 neighbours with their thumbnails")
        expected = httpx.post(f"{base}/images/similar", json={"id": chosen, "k": 12}).json()["items"]
        shown = _shown(browser, "#results .card")
        assert [eval_json(x["data"]["id"]) for x in shown] == [x["id"] for x in expected]
        assert [float(x["data"]["score"]) for x in shown] == [x["score"] for x in expected]
        for entry, answer in zip(shown, expected):
            assert f"#{answer['rank']}" in entry["text"] and f"{answer['score']:.3f}" in entry["text"]
            assert entry["images"] == [28]  # the thumbnail loaded: the digit's own 28 px
        assert browser.find_element(By.ID, "query-title").text == chosen
        _screenshot(browser, request, tmp_path_factory, "images")
        # upload a photo: a digit that is not indexed, as POST /images/search answers
        query = tmp_path / "my digit.png"
        Image.fromarray(aerec.datasets.mnist(download=False).images[-1]).save(query)
        browser.find_element(By.ID, "file").send_keys(str(query))
        _wait(browser, lambda d: d.find_element(By.ID, "query-title").text == "my digit.png" and
              all(_shown(d, "#results .card")[-1]["images"]), "the upload's neighbours")
        with open(query, "rb") as f:
            expected = httpx.post(f"{base}/images/search", files={"file": ("q.png", f, "image/png")},
                                  data={"k": "12"}).json()["items"]
        shown = _shown(browser, "#results .card")
        assert [eval_json(x["data"]["id"]) for x in shown] == [x["id"] for x in expected]
        np.testing.assert_allclose([float(x["data"]["score"]) for x in shown], [x["score"] for x in expected],
                                   rtol=1e-5)
        # a file that is not an image: the server's reason, in the page
        bad = tmp_path / "notes.png"
        bad.write_bytes(b"these are notes, not pixels")
        browser.find_element(By.ID, "file").send_keys(str(bad))
        _wait(browser, lambda d: "not a decodable image" in d.find_element(By.ID, "status").text, "the error line")
        logged = _console_errors(browser)  # the upload's 422, and nothing else
        assert [e for e in logged if not ("/images/search" in e["message"] and "422" in e["message"])] == [], logged


def eval_json(text: str):
    import json

    return json.loads(text)


def test_recommender_page_in_a_browser(browser, rec_bundle, model, titles, request, tmp_path_factory):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    title_of = titles.set_index("item")["title"]
    with browsers.Live(create_app(rec_bundle, titles=titles)) as base:
        browser.get(base + "/")
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#user-ids option"), "the user picker")
        options = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#user-ids option")]
        assert options == [str(u) for u in model.users_.ids[:200]]
        # pick a user: the recommendations of POST /recommend, with the items' titles
        user = int(model.users_.ids[7])
        browser.find_element(By.ID, "user").send_keys(str(user), Keys.ENTER)
        _wait(browser, lambda d: len(_shown(d, "#results li")) == 10, "10 recommendations")
        expected = httpx.post(f"{base}/recommend", json={"user": user, "k": 10}).json()["items"]
        shown = _shown(browser, "#results li")
        assert [eval_json(x["data"]["item"]) for x in shown] == [x["item"] for x in expected]
        for entry, answer in zip(shown, expected):
            assert title_of[answer["item"]] in entry["text"] and f"{answer['score']:.3f}" in entry["text"]
        assert browser.find_element(By.ID, "title").text == f"Recommendations for user {user}"
        seen = httpx.get(f"{base}/users/{user}/items", params={"limit": 8}).json()
        chips = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#based-on .chip")]
        assert chips == [title_of[i] for i in seen["items"]]
        assert f"and {seen['total'] - 8} more" in browser.find_element(By.ID, "based-on").text
        # a new user's history, typed and found by title; an unknown id is shown as not used
        history = [int(v) for v in model.items_.ids[:3]]
        box = browser.find_element(By.ID, "history")
        box.send_keys(", ".join(map(str, history[:2])) + ", 424242")
        browser.find_element(By.ID, "find").send_keys(title_of[history[2]][:12])
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions button"), "title suggestions")
        suggestion = next(b for b in browser.find_elements(By.CSS_SELECTOR, "#suggestions button")
                          if b.text.startswith(title_of[history[2]]))
        suggestion.click()
        assert box.get_attribute("value") == ", ".join(map(str, history[:2])) + f", 424242, {history[2]}"
        browser.find_element(By.CSS_SELECTOR, "#history-form button[type=submit]").click()
        _wait(browser, lambda d: d.find_element(By.ID, "title").text == "Recommendations for a new user",
              "the history's recommendations")
        sent = [str(history[0]), str(history[1]), "424242", str(history[2])]
        answer = httpx.post(f"{base}/recommend/history", json={"items": sent, "k": 10}).json()
        shown = _shown(browser, "#results li")
        assert [eval_json(x["data"]["item"]) for x in shown] == [x["item"] for x in answer["items"]]
        assert [title_of[x["item"]] for x in answer["items"]] == [
            browser.execute_script("return arguments[0].querySelector('.title').textContent", li)
            for li in browser.find_elements(By.CSS_SELECTOR, "#results li")]
        chips = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#based-on .chip")]
        assert chips == [title_of[h] for h in (history[0], history[1], history[2])] + ["424242: unknown"]
        _screenshot(browser, request, tmp_path_factory, "recommender")
        # a result's similar items
        first = browser.find_element(By.CSS_SELECTOR, "#results li button")
        item = eval_json(browser.find_element(By.CSS_SELECTOR, "#results li").get_attribute("data-item"))
        first.click()
        _wait(browser, lambda d: d.find_element(By.ID, "title").text == f"Items like {title_of[item]}", "similar items")
        expected = httpx.post(f"{base}/similar-items", json={"item": item, "k": 10}).json()["items"]
        assert [eval_json(x["data"]["item"]) for x in _shown(browser, "#results li")] == [x["item"] for x in expected]
        assert _console_errors(browser) == []


def test_the_page_asks_for_the_key_and_then_works(browser, rec_bundle, model):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with browsers.Live(create_app(rec_bundle, api_key="page-key-123")) as base:
        browser.get(base + "/")
        browser.execute_script("sessionStorage.clear()")
        browser.refresh()
        _wait(browser, lambda d: d.find_element(By.ID, "key-form").is_displayed(), "the key form")
        assert "API key" in browser.find_element(By.ID, "status").text
        browser.find_element(By.ID, "key").send_keys("wrong", Keys.ENTER)
        _wait(browser, lambda d: "not accepted" in d.find_element(By.ID, "key-message").text, "the refusal")
        browser.find_element(By.ID, "key").send_keys("page-key-123", Keys.ENTER)
        _wait(browser, lambda d: "EASE" in d.find_element(By.ID, "model").text, "the header, with the key")
        assert not browser.find_element(By.ID, "key-form").is_displayed()
        user = int(model.users_.ids[0])
        browser.find_element(By.ID, "user").send_keys(str(user), Keys.ENTER)
        _wait(browser, lambda d: len(_shown(d, "#results li")) == 10, "recommendations with the key")
        assert browser.execute_script("return sessionStorage.getItem('aerec.apiKey')") == "page-key-123"
        assert browser.execute_script("return localStorage.length") == 0
        assert "page-key-123" not in browser.current_url
        browser.execute_script("sessionStorage.clear()")
