"""The HTTP server: FastAPI's test client, a real uvicorn process on loopback, and a bounded schemathesis run."""
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import aerec
from aerec.server import create_app


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, small_positives):
    path = tmp_path_factory.mktemp("srv") / "ease"
    aerec.EASE(l2=30.0).fit(small_positives).save(path)
    return path


@pytest.fixture(scope="module")
def model(bundle):
    return aerec.load(bundle)


@pytest.fixture(scope="module")
def client(bundle):
    return TestClient(create_app(bundle, max_k=50, max_history=100))


def test_health_and_metadata(client, model):
    assert client.get("/health").json() == {"status": "ok", "model": "EASE"}
    meta = client.get("/metadata").json()
    assert meta["model"] == "EASE" and meta["params"]["l2"] == 30.0
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


def test_openapi_names_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/metadata", "/recommend", "/recommend/history", "/similar-items"} <= set(paths)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_uvicorn_process(bundle, model):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aerec.cli", "serve", str(bundle), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail(f"server did not start: {proc.stdout.read1().decode() if proc.poll() is not None else ''}")
        user = int(model.users_.ids[1])
        body = httpx.post(f"http://127.0.0.1:{port}/recommend", json={"user": user, "k": 5}, timeout=5).json()
        assert [x["item"] for x in body["items"]] == model.recommend([user], k=5)["item"].tolist()
        assert httpx.post(f"http://127.0.0.1:{port}/recommend", json={"user": -1}, timeout=5).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_schemathesis_finds_no_server_error(bundle):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(bundle, max_k=50, max_history=100))
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=op.as_strategy())
        def check(case):
            response = case.call()
            if response.status_code >= 500:
                failures.append((op.label, case.body, response.text))

        check()
    assert not failures, failures[:3]
