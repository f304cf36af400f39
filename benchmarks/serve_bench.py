"""Protocol D, HTTP: requests/s and p50/p99 latency of the recommendation endpoints on loopback.

Fits a model on protocol A1 seed 0, saves the bundle, starts ``aerec serve`` (uvicorn) on a free
127.0.0.1 port and drives it with wrk (Debian package ``wrk``) at 1, 8, 32 and 64 concurrent
connections, for known-user recommendations and for fold-in of a 50-item history. The in-process
call time of the same work is measured in the same run as the baseline. Every load run is bounded
in time (``--seconds``) and stops by itself.

    AEREC_DATA_HOME=../shared/data python benchmarks/serve_bench.py [--model EASE] [--workers 2] [--seconds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aerec  # noqa: E402
from _common import emit, machine, markdown  # noqa: E402

LUA = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json"}, bodies[(n %% #bodies) + 1])
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_wrk(text: str) -> dict:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
        return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    pct = {p: ms(v) for p, v in re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", text, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"req/s": rps, "p50 ms": pct.get("50"), "p99 ms": pct.get("99"), "non-2xx": int(errors.group(1)) if errors else 0}


def in_process(fn, bodies, repeat=2000) -> float:
    for body in bodies[:50]:
        fn(body)
    start = time.perf_counter()
    for i in range(repeat):
        fn(bodies[i % len(bodies)])
    return (time.perf_counter() - start) / repeat * 1e3


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="EASE")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("serve_bench needs wrk on the PATH (Debian: apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="aerec-serve-bench-"))
    split = aerec.evaluate.load_protocol_a("weak", 0)
    from aerec.base import registered

    model = registered(args.model)().fit(split["train"], valid=split["valid"])
    model.save(work / "bundle")
    model = aerec.load(work / "bundle")
    rng = np.random.default_rng(0)
    users = rng.choice(np.asarray(model.users_.ids), size=500)
    items = np.asarray(model.items_.ids)
    known = [json.dumps({"user": int(u), "k": 10}) for u in users]
    histories = [json.dumps({"items": [int(i) for i in rng.choice(items, 50, replace=False)], "k": 10})
                 for _ in range(500)]

    # baseline, in process: the public API, and the app's own handler work without HTTP
    from fastapi.testclient import TestClient
    from aerec.server import create_app

    app = create_app(work / "bundle")
    handlers = {r.path: r.endpoint for r in app.routes if hasattr(r, "endpoint")}
    from aerec.server import HistoryRequest, RecommendRequest

    base = {
        "known user": {
            "recommend() ms": in_process(lambda b: model.recommend([json.loads(b)["user"]], k=10), known, 500),
            "handler ms": in_process(lambda b: handlers["/recommend"](RecommendRequest.model_validate_json(b)), known),
        },
        "fold-in, 50 items": {
            "recommend() ms": in_process(lambda b: model.recommend_for_history(
                pd.DataFrame({"user": 0, "item": json.loads(b)["items"]}), k=10), histories, 300),
            "handler ms": in_process(lambda b: handlers["/recommend/history"](HistoryRequest.model_validate_json(b)),
                                     histories),
        },
    }
    del TestClient

    port = free_port()
    env = {**os.environ, "AEREC_BUNDLE": str(work / "bundle")}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "aerec.server:app_from_env", "--factory",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
                               "--log-level", "warning", "--no-access-log"], env=env)
    rows = []
    try:
        import httpx

        deadline = time.time() + 120
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.time() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.3)
        for name, path, bodies in (("known user", "/recommend", known), ("fold-in, 50 items", "/recommend/history", histories)):
            body_file = work / f"{path.strip('/').replace('/', '_')}.jsonl"
            body_file.write_text("\n".join(bodies) + "\n")
            script = work / f"{body_file.stem}.lua"
            script.write_text(LUA % (body_file, path))
            for c in args.concurrency:
                out = subprocess.run(["wrk", "-t", str(min(2, c)), "-c", str(c), "-d", f"{args.seconds}s", "--latency",
                                      "-s", str(script), f"http://127.0.0.1:{port}"],
                                     capture_output=True, text=True, timeout=args.seconds + 60).stdout
                rows.append({"endpoint": name, "clients": c, **parse_wrk(out), **base[name]})
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    table = pd.DataFrame(rows).round(3)
    text = "\n".join([
        f"Machine: {machine()}",
        f"Model: {args.model} fitted on protocol A1 seed 0 ({len(model.users_)} users x {len(model.items_)} items); "
        f"uvicorn with {args.workers} worker(s); wrk, {args.seconds} s per row, on the same 2 cores",
        "", markdown(table, index=False), "",
        "recommend() ms: the public DataFrame API in process; handler ms: the endpoint's own work in process "
        "(request parsing, lookup, scoring, top-k), the baseline for the HTTP figures.",
    ])
    return emit(text, args.out)


if __name__ == "__main__":
    main()
