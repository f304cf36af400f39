"""The HTTP server: FastAPI's test client, a real uvicorn process on loopback, and a bounded schemathesis run,
for each kind of bundle it serves (recommender, image search, rating model)."""
import io
import os
import socket
import subprocess
import sys
import time
import warnings

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import aerec
from aerec.exceptions import UnknownIdsWarning
from aerec.server import create_app


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, small_positives):
    path = tmp_path_factory.mktemp("srv") / "ease"
    aerec.EASE(l2=30.0).fit(small_positives).save(path)
    return path


@pytest.fixture(scope="module")
def digits():
    """200 real MNIST digits of 0 and 1, 28 x 28 uint8."""
    data = aerec.datasets.mnist()
    keep = np.flatnonzero(np.isin(data.labels, [0, 1]))[:200]
    return data.images[keep]


@pytest.fixture(scope="module")
def image_bundle(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("srv") / "images"
    ids = [f"digit-{j}.png" for j in range(len(digits))]
    aerec.ImageSearch(code_dim=8, filters=(8, 16), epochs=2, batch_size=64, verbose=0).fit(digits, ids=ids).save(path)
    return path


@pytest.fixture(scope="module")
def ratings(ml100k):
    """ML-100K ratings of the first 100 users on the 200 most rated items."""
    r = ml100k.ratings
    r = r[r["item"].isin(r["item"].value_counts().index[:200]) & (r["user"] <= 100)]
    return r[["user", "item", "rating"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def rating_bundle(tmp_path_factory, ratings):
    path = tmp_path_factory.mktemp("srv") / "autorec"
    aerec.AutoRec(hidden_dim=16, epochs=30, validation_fraction=0.0, seed=0).fit(ratings).save(path)
    return path


def png_bytes(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model(bundle):
    return aerec.load(bundle)


@pytest.fixture(scope="module")
def client(bundle):
    return TestClient(create_app(bundle, max_k=50, max_history=100))


def test_health_and_metadata(client, model):
    assert client.get("/health").json() == {"status": "ok", "model": "EASE"}
    meta = client.get("/metadata").json()
    assert meta["kind"] == "recommender" and meta["model"] == "EASE" and meta["params"]["l2"] == 30.0
    assert meta["n_items"] == len(model.items_) and meta["limits"]["max_k"] == 50


def test_recommend_equals_in_process(client, model):
    user = int(model.users_.ids[3])
    body = client.post("/recommend", json={"user": user, "k": 7}).json()
    expected = model.recommend([user], k=7)
    assert body["user"] == user
    assert [x["item"] for x in body["items"]] == expected["item"].tolist()
    np.testing.assert_allclose([x["score"] for x in body["items"]], expected["score"], rtol=1e-6)
    assert [x["rank"] for x in body["items"]] == list(range(1, 8))
    # a numeric id sent as a string finds the same user
    assert client.post("/recommend", json={"user": str(user), "k": 7}).json()["items"] == body["items"]


def test_history_equals_in_process_and_reports_ignored(client, model, small_positives):
    history = small_positives[small_positives["user"] == small_positives["user"].iloc[0]].head(30)
    items = history["item"].tolist()
    body = client.post("/recommend/history", json={"items": items + ["nope"], "k": 5}).json()
    expected = model.recommend_for_history(history.assign(user="new"), k=5)
    assert [x["item"] for x in body["items"]] == expected["item"].tolist()
    assert body["ignored"] == ["nope"]


def test_similar_items_equals_in_process(client, model):
    item = int(model.items_.ids[0])
    body = client.post("/similar-items", json={"item": item, "k": 4}).json()
    assert [x["item"] for x in body["items"]] == model.similar_items([item], k=4)["similar_item"].tolist()


def test_unknown_ids_are_404_naming_them(client):
    r = client.post("/recommend", json={"user": 987654, "k": 3})
    assert r.status_code == 404 and "987654" in r.json()["detail"] and "user" in r.json()["detail"]
    r = client.post("/similar-items", json={"item": "no-such-item", "k": 3})
    assert r.status_code == 404 and "no-such-item" in r.json()["detail"]


def test_bad_bodies_and_limits_are_422(client, model):
    user = int(model.users_.ids[0])
    assert client.post("/recommend", json={"k": 3}).status_code == 422                 # no user
    assert client.post("/recommend", json={"user": user, "k": 0}).status_code == 422   # k < 1
    assert client.post("/recommend", json={"user": 1.5}).status_code == 422            # not an id
    r = client.post("/recommend", json={"user": user, "k": 51})
    assert r.status_code == 422 and "limit of 50" in r.json()["detail"]
    r = client.post("/recommend/history", json={"items": list(range(101)), "k": 3})
    assert r.status_code == 422 and "limit is 100" in r.json()["detail"]
    assert client.post("/recommend/history", json={"items": [], "k": 3}).status_code == 422


def test_api_key(bundle, model):
    secured = TestClient(create_app(bundle, api_key="s3cret"))
    user = int(model.users_.ids[0])
    assert secured.get("/health").status_code == 200
    assert secured.post("/recommend", json={"user": user}).status_code == 401
    assert secured.post("/recommend", json={"user": user}, headers={"X-API-Key": "wrong"}).status_code == 401
    assert secured.post("/recommend", json={"user": user}, headers={"X-API-Key": "s3cret"}).status_code == 200


def test_json_bodies_over_the_limit_are_413_before_they_are_parsed(bundle, model):
    small = TestClient(create_app(bundle, max_body_bytes=1000))
    user = int(model.users_.ids[0])
    r = small.post("/recommend", content=b'{"user": 1, "k": 3, "pad": "' + b"x" * 5000 + b'"}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "the body is 5030 bytes; the limit is 1000 bytes" in r.json()["detail"]
    chunks = iter([b'{"items": [', b"1, " * 600, b"2]}"])  # streamed, no Content-Length
    r = small.post("/recommend/history", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "more than 1000 bytes" in r.json()["detail"]
    assert small.post("/recommend", json={"user": user, "k": 3}).status_code == 200


def test_the_key_is_checked_before_the_body_is_read(bundle, model):
    secured = TestClient(create_app(bundle, api_key="s3cret", max_body_bytes=1000))
    huge = b'{"user": 1, "pad": "' + b"x" * 50_000 + b'"}'
    r = secured.post("/recommend", content=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 401  # not 413, not 422: nothing was read
    r = secured.post("/recommend", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    assert secured.get("/metadata").status_code == 401 and secured.get("/health").status_code == 200
    assert secured.get("/docs").status_code == 200  # the page is open; its requests carry the key


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_key_is_refused(bundle, key):
    with pytest.raises(aerec.exceptions.InvalidParameterError, match="api_key is empty"):
        create_app(bundle, api_key=key)


def test_malformed_json_is_explained(client):
    r = client.post("/recommend", content=b'{"user": 1, "k": }', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"] == "the body is not valid JSON: expecting value at character 17"


def test_docs_page_works_without_internet(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    sources = [part.split('"')[1] for part in page.text.split("src=")[1:]] + \
              [part.split('"')[1] for part in page.text.split("href=")[1:]]
    assert sources and all(src.startswith("/") for src in sources), sources  # nothing from a CDN
    for src in sources:
        assert client.get(src).status_code == 200, src
    assert client.get("/openapi.json").status_code == 200


RECOMMENDER_PATHS = {"/health", "/metadata", "/recommend", "/recommend/history", "/similar-items", "/users", "/items",
                     "/items/search", "/users/{user}/items"}
IMAGE_PATHS = {"/health", "/metadata", "/images/search", "/images/similar", "/images/ids", "/images/file/{image_id}"}
RATING_PATHS = {"/health", "/metadata", "/predict"}


def test_routes_depend_on_the_kind_of_bundle(bundle, image_bundle, rating_bundle):
    for path, kind, expected in ((bundle, "recommender", RECOMMENDER_PATHS),
                                 (image_bundle, "image search", IMAGE_PATHS),
                                 (rating_bundle, "rating model", RATING_PATHS)):
        client = TestClient(create_app(path))
        schema = client.get("/openapi.json").json()
        assert set(schema["paths"]) == expected, kind
        assert client.get("/metadata").json()["kind"] == kind
        # every endpoint has pydantic request and response models in the schema
        for route, ops in schema["paths"].items():
            for op in ops.values():
                content = op["responses"]["200"]["content"]
                if "image/png" in content:  # a thumbnail
                    continue
                assert "$ref" in str(content["application/json"]["schema"]), route
        # a route of another kind is not there
        other = "/predict" if kind != "rating model" else "/recommend"
        assert client.post(other, json={}).status_code == 404


def test_bundle_of_another_kind_is_refused(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0] * 10, "y": [0.5, np.nan, 1.5, 2.0] * 10})
    aerec.TableAutoencoder(hidden_dim=4, epochs=2, seed=0).fit(frame).save(tmp_path / "table")
    with pytest.raises(TypeError, match="TableAutoencoder.*ImageSearch.*AutoRec.*recommender"):
        create_app(tmp_path / "table")


# --- Mult-VAE: the Keras recommender served through its NumPy fold-in ------------------------------
def test_multvae_bundle_answers_as_in_process(tmp_path, small_positives):
    model = aerec.MultVAE(hidden_dim=32, code_dim=8, epochs=3, seed=0).fit(small_positives)
    model.save(tmp_path / "vae")
    client = TestClient(create_app(tmp_path / "vae"))
    user = int(model.users_.ids[7])
    body = client.post("/recommend", json={"user": user, "k": 10}).json()
    expected = model.recommend([user], k=10)
    assert [x["item"] for x in body["items"]] == expected["item"].tolist()
    np.testing.assert_allclose([x["score"] for x in body["items"]], expected["score"], rtol=1e-5)
    history = small_positives[small_positives["user"] == user]["item"].tolist()[:50]
    body = client.post("/recommend/history", json={"items": history, "k": 10}).json()
    expected = model.recommend_for_history(pd.DataFrame({"user": "new", "item": history}), k=10)
    assert [x["item"] for x in body["items"]] == expected["item"].tolist()


# --- image search by upload --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_client(image_bundle):
    return TestClient(create_app(image_bundle, max_k=20))


@pytest.fixture(scope="module")
def search(image_bundle):
    return aerec.load(image_bundle)


def test_image_upload_equals_in_process_search(image_client, search, digits):
    r = image_client.post("/images/search", files={"file": ("q.png", png_bytes(digits[5]), "image/png")},
                          data={"k": "6"})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    expected = search.search(digits[5:6], k=6)
    assert [x["id"] for x in items] == expected["id"].tolist()
    assert items[0]["id"] == "digit-5.png" and [x["rank"] for x in items] == list(range(1, 7))
    np.testing.assert_allclose([x["score"] for x in items], expected["score"], rtol=1e-5)
    # a JPEG of another size is read and resized the way ImageSearch reads files
    big = np.asarray(Image.fromarray(digits[9]).resize((56, 56)))
    r = image_client.post("/images/search", files={"file": ("q.jpg", png_bytes(big, "JPEG"), "image/jpeg")})
    assert r.status_code == 200 and len(r.json()["items"]) == 10  # the default k
    assert r.json()["items"][0]["id"] == "digit-9.png"


def test_similar_images_and_unknown_image_id(image_client, search):
    body = image_client.post("/images/similar", json={"id": "digit-3.png", "k": 4}).json()
    assert [x["id"] for x in body["items"]] == search.similar(["digit-3.png"], k=4)["id"].tolist()
    r = image_client.post("/images/similar", json={"id": "nope.png", "k": 4})
    assert r.status_code == 404 and "nope.png" in r.json()["detail"] and "image" in r.json()["detail"]


def test_upload_that_is_not_an_image_is_422(image_client, digits):
    for name, content in (("notes.txt", b"hello, not an image"), ("empty.png", b""),
                          ("cut.png", png_bytes(digits[0])[:60])):
        r = image_client.post("/images/search", files={"file": (name, content, "image/png")})
        assert r.status_code == 422, (name, r.text)
        assert "image" in r.json()["detail"] and "Traceback" not in r.text
    assert image_client.post("/images/search", data={"k": "3"}).status_code == 422  # no file
    r = image_client.post("/images/search", files={"file": ("q.png", png_bytes(digits[0]), "image/png")},
                          data={"k": "21"})
    assert r.status_code == 422 and "limit of 20" in r.json()["detail"]


def test_upload_over_the_limits_is_413(image_bundle, digits):
    client = TestClient(create_app(image_bundle, max_upload_bytes=2000, max_image_pixels=100_000))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)  # ~4 KB as PNG
    r = client.post("/images/search", files={"file": ("noise.png", png_bytes(noise), "image/png")})
    assert r.status_code == 413 and "limit is 2000 bytes" in r.json()["detail"]
    # a streamed body without Content-Length is counted as it arrives
    payload = png_bytes(noise)
    boundary = "aerecboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    chunks = iter([body[i:i + 500] for i in range(0, len(body), 500)])
    r = client.post("/images/search", content=chunks,
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "more than 2000 bytes" in r.json()["detail"]
    # a small file that decodes to a huge image is refused before it is decoded
    r = client.post("/images/search", files={"file": ("big.png", png_bytes(np.zeros((1000, 1000), np.uint8)), "image/png")})
    assert r.status_code == 413 and "1000 x 1000 pixels" in r.json()["detail"]
    # under the limits the same app answers
    assert client.post("/images/search", files={"file": ("ok.png", png_bytes(digits[0]), "image/png")}).status_code == 200


# --- rating prediction ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rating_client(rating_bundle):
    return TestClient(create_app(rating_bundle, max_pairs=50))


@pytest.fixture(scope="module")
def autorec(rating_bundle):
    return aerec.load(rating_bundle)


def test_predict_equals_in_process_and_reports_fallbacks(rating_client, autorec, ratings):
    pairs = [{"user": int(u), "item": int(i)} for u, i in ratings[["user", "item"]].head(5).itertuples(index=False)]
    unknown = [{"user": 99999, "item": pairs[0]["item"]}, {"user": pairs[0]["user"], "item": 99999},
               {"user": "ghost", "item": "nothing"}]
    r = rating_client.post("/predict", json={"pairs": pairs + unknown})
    assert r.status_code == 200, r.text
    body = r.json()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownIdsWarning)
        expected = autorec.predict(pd.DataFrame([{"user": p["user"], "item": p["item"]} for p in pairs + unknown],
                                                dtype=object))["rating"]
    np.testing.assert_allclose([p["rating"] for p in body["predictions"]], expected, rtol=1e-6)
    assert [p["fallback"] for p in body["predictions"]] == [None] * 5 + ["item_mean", "user_mean", "global_mean"]
    assert body["n_fallback"] == 3
    assert [(p["user"], p["item"]) for p in body["predictions"]] == [(p["user"], p["item"]) for p in pairs + unknown]
    lo, hi = autorec.rating_range_
    assert all(lo <= p["rating"] <= hi for p in body["predictions"])
    # the fallbacks are the documented means
    assert body["predictions"][-1]["rating"] == pytest.approx(autorec.global_mean_)
    # "42" finds the integer id 42, as on the other endpoints
    as_text = rating_client.post("/predict", json={"pairs": [{"user": str(pairs[0]["user"]), "item": pairs[0]["item"]}]})
    assert as_text.json()["predictions"][0]["fallback"] is None
    assert as_text.json()["predictions"][0]["rating"] == pytest.approx(body["predictions"][0]["rating"])


def test_predict_bad_bodies_are_422(rating_client):
    assert rating_client.post("/predict", json={"pairs": []}).status_code == 422
    assert rating_client.post("/predict", json={"pairs": [{"user": 1}]}).status_code == 422
    r = rating_client.post("/predict", json={"pairs": [{"user": 1, "item": 2.5}]})
    assert r.status_code == 422 and "pairs.0.item" in r.json()["detail"]
    r = rating_client.post("/predict", json={"pairs": [{"user": 1, "item": 1}] * 51})
    assert r.status_code == 422 and "limit is 50" in r.json()["detail"]


def test_openapi_names_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert RECOMMENDER_PATHS <= set(paths)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["recommender", "image search", "rating model"])
def served(request, bundle, image_bundle, rating_bundle):
    """A real ``aerec serve`` process (uvicorn) on a free loopback port, for each kind of bundle."""
    path = {"recommender": bundle, "image search": image_bundle, "rating model": rating_bundle}[request.param]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aerec.cli", "serve", str(path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if proc.poll() is not None:
                    pytest.fail(f"server exited: {proc.stdout.read().decode()}")
                time.sleep(0.2)
        else:
            pytest.fail("server did not start in 60 s")
        yield request.param, base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_real_uvicorn_process(served, model, search, digits, autorec, ratings):
    kind, base = served
    assert httpx.get(f"{base}/metadata", timeout=5).json()["kind"] == kind
    if kind == "recommender":
        user = int(model.users_.ids[1])
        body = httpx.post(f"{base}/recommend", json={"user": user, "k": 5}, timeout=5).json()
        assert [x["item"] for x in body["items"]] == model.recommend([user], k=5)["item"].tolist()
        assert httpx.post(f"{base}/recommend", json={"user": -1}, timeout=5).status_code == 404
    elif kind == "image search":
        r = httpx.post(f"{base}/images/search", files={"file": ("q.png", png_bytes(digits[7]), "image/png")},
                       data={"k": "3"}, timeout=30)
        assert [x["id"] for x in r.json()["items"]] == search.search(digits[7:8], k=3)["id"].tolist()
        r = httpx.post(f"{base}/images/search", files={"file": ("q.png", b"GIF89a-not-really", "image/png")}, timeout=30)
        assert r.status_code == 422
        r = httpx.post(f"{base}/images/search", files={"file": ("big.png", b"0" * (10 * 2**20 + 1), "image/png")},
                       timeout=30)
        assert r.status_code == 413 and "limit" in r.json()["detail"]
    else:
        user, item = (int(v) for v in ratings[["user", "item"]].iloc[0])
        r = httpx.post(f"{base}/predict", json={"pairs": [{"user": user, "item": item}, {"user": -5, "item": item}]},
                       timeout=30)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownIdsWarning)
            expected = autorec.predict(pd.DataFrame({"user": [user, -5], "item": [item, item]}))["rating"]
        np.testing.assert_allclose([p["rating"] for p in r.json()["predictions"]], expected, rtol=1e-6)
        assert [p["fallback"] for p in r.json()["predictions"]] == [None, "item_mean"]


@pytest.mark.parametrize("kind", ["recommender", "image search", "rating model"])
def test_schemathesis_finds_no_server_error(kind, bundle, image_bundle, rating_bundle):
    """Bounded property-based run: no 5xx, and every response matches the documented status codes and schemas."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

    path = {"recommender": bundle, "image search": image_bundle, "rating model": rating_bundle}[kind]
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(path, max_k=50, max_history=100, max_pairs=20))
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=op.as_strategy())
        def check(case):
            response = case.call()
            try:
                case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                         response_schema_conformance])
            except AssertionError as exc:  # schemathesis' failures are AssertionErrors
                failures.append((op.label, response.status_code, str(exc)[:300]))

        check()
    assert not failures, failures[:3]


def test_history_of_a_sequential_bundle_is_read_in_order(tmp_path, small_positives):
    model = aerec.SequentialDAE(code_dim=8, n_layers=1, max_length=10, epochs=2).fit(small_positives, time="timestamp")
    model.save(tmp_path / "seq")
    client = TestClient(create_app(tmp_path / "seq"))
    items = [int(i) for i in model.items_.ids[[3, 1, 4, 15, 9]]]
    answers = {}
    for name, order in (("forward", items), ("backward", items[::-1])):
        got = client.post("/recommend/history", json={"items": order, "k": 5}).json()["items"]
        expected = model.recommend_for_history(pd.DataFrame({"user": 0, "item": order}), k=5)
        assert [g["item"] for g in got] == expected["item"].tolist()
        np.testing.assert_allclose([g["score"] for g in got], expected["score"], rtol=1e-5)
        answers[name] = [g["score"] for g in got]
    assert answers["forward"] != answers["backward"]  # the order is read, not just the set
