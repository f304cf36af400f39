"""Protocol D, HTTP: requests/s and p50/p99 latency of the recommendation endpoints on loopback.

Fits a Mult-VAE (``aerec.MultVAE``, defaults, early stopping on the validation split) on protocol
A1 seed 0 of MovieLens-100K, saves the bundle, starts ``aerec.server`` under uvicorn on a free
127.0.0.1 port and drives it with wrk (Debian package ``wrk``, one thread) at 1, 8, 32 and 64
concurrent connections, for known-user recommendations (``POST /recommend``) and for fold-in of a
50-item history (``POST /recommend/history``), k=10, 500 different request bodies cycled. Each
load row runs ``--seconds`` after a 2 s warm-up of the same endpoint, and stops by itself.

The baseline is measured in the same run, in process: the public API call (``recommend``,
``recommend_for_history``) and the endpoint's own work without HTTP (pydantic parsing of the
same JSON body, id lookup, user code, FAISS search, response dict). A second table times the
user code of one 50-item history through the Keras network and through its NumPy path.

The machine has 2 cores, shared by the server, wrk and whatever else runs: the 1-minute load
average is recorded before every row.

    AEREC_DATA_HOME=../shared/data python benchmarks/serve_bench.py [--workers 1 2] [--seconds 10]
        [--bundle DIR]  (reuse a saved bundle instead of fitting)  [--out benchmarks/results/serve_bench.md]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
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

ENDPOINTS = (("known user", "/recommend"), ("fold-in, 50 items", "/recommend/history"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_average() -> float:
    return os.getloadavg()[0]


def parse_wrk(text: str) -> dict:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
        return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    pct = {p: ms(v) for p, v in re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", text, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {"req/s": rps, "p50 ms": pct.get("50"), "p99 ms": pct.get("99"),
            "errors": (int(errors.group(1)) if errors else 0) + (sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
                                                             if socket_errors else 0)}


def per_call_ms(fn, inputs, repeat: int) -> float:
    """Median over 5 rounds of the mean time of ``repeat`` calls cycling through ``inputs`` (after a warm-up)."""
    for x in inputs[:50]:
        fn(x)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(repeat):
            fn(inputs[i % len(inputs)])
        rounds.append((time.perf_counter() - start) / repeat * 1e3)
    return float(np.median(rounds))


def run_coroutine(coroutine):
    """The value of a coroutine that never waits (the endpoints' handlers), without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the handler awaited something")


def fit_bundle(path: Path) -> None:
    split = aerec.evaluate.load_protocol_a("weak", 0)
    model = aerec.MultVAE(seed=0).fit(split["train"], valid=split["valid"])
    model.save(path)


def request_bodies(model, n: int = 500, history: int = 50) -> dict[str, list[str]]:
    rng = np.random.default_rng(0)
    users = rng.choice(np.asarray(model.users_.ids), size=n)
    items = np.asarray(model.items_.ids)
    return {
        "/recommend": [json.dumps({"user": int(u), "k": 10}) for u in users],
        "/recommend/history": [json.dumps({"items": [int(i) for i in rng.choice(items, history, replace=False)], "k": 10})
                               for _ in range(n)],
    }


def in_process(model, bundle: Path, bodies: dict) -> dict:
    from aerec.server import HistoryRequest, RecommendRequest, create_app

    app = create_app(bundle)
    handlers = {r.path: r.endpoint for r in app.routes if hasattr(r, "endpoint")}
    known = [json.loads(b)["user"] for b in bodies["/recommend"]]
    histories = [pd.DataFrame({"user": 0, "item": json.loads(b)["items"]}) for b in bodies["/recommend/history"]]
    return {
        "/recommend": {
            "API ms": per_call_ms(lambda u: model.recommend([u], k=10, via="index"), known, 200),
            "handler ms": per_call_ms(lambda b: run_coroutine(handlers["/recommend"](RecommendRequest.model_validate_json(b))),
                                      bodies["/recommend"], 1000),
        },
        "/recommend/history": {
            "API ms": per_call_ms(lambda h: model.recommend_for_history(h, k=10, via="index"), histories, 200),
            "handler ms": per_call_ms(
                lambda b: run_coroutine(handlers["/recommend/history"](HistoryRequest.model_validate_json(b))),
                bodies["/recommend/history"], 1000),
        },
    }


def user_code_paths(model, bodies: dict) -> pd.DataFrame:
    """One 50-item history's user code: the Keras network called eagerly vs its NumPy path."""
    import scipy.sparse as sp

    rows = []
    for b in bodies["/recommend/history"][:200]:
        cols = np.unique(model.items_.index_of(json.loads(b)["items"]))
        rows.append(sp.csr_matrix((np.ones(len(cols), np.float32), cols, [0, len(cols)]), shape=(1, len(model.items_))))
    net = model.network_
    keras_ms = per_call_ms(lambda r: net.user_code(np.asarray(r.toarray(), np.float32)), rows, 200)
    numpy_ms = per_call_ms(lambda r: net.numpy_user_code(r), rows, 1000)
    worst = max(float(np.abs(net.numpy_user_code(r) - np.asarray(net.user_code(r.toarray()))).max()) for r in rows[:50])
    return pd.DataFrame([{"user code of a 50-item history": "Keras network (eager call)", "ms": round(keras_ms, 4)},
                         {"user code of a 50-item history": "NumPy path (numpy_user_code)", "ms": round(numpy_ms, 4)},
                         {"user code of a 50-item history": "largest absolute difference between the two codes", "ms": f"{worst:.1e}"}])


def start_server(bundle: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "AEREC_BUNDLE": str(bundle)}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "aerec.server:app_from_env", "--factory",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                               "--log-level", "warning", "--no-access-log"], env=env, start_new_session=True)
    import httpx

    deadline = time.time() + 180
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                # every worker answers: a few health checks more while the others finish loading
                time.sleep(2 * workers)
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.time() > deadline:
            stop_server(server)
            raise SystemExit("the server did not start")
        time.sleep(0.3)


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the uvicorn supervisor and its workers
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def wrk(url: str, script: Path, connections: int, seconds: int) -> str:
    return subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(script),
                           url], capture_output=True, text=True, timeout=seconds + 60).stdout


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn worker processes to compare")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--bundle", type=Path, default=None, help="a saved Mult-VAE bundle to serve (default: fit one)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("serve_bench needs wrk on the PATH (Debian: apt-get install wrk)")

    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="aerec-serve-bench-"))
    try:
        bundle = args.bundle
        if bundle is None:
            bundle = work / "bundle"
            fit_bundle(bundle)
        model = aerec.load(bundle)
        if not isinstance(model, aerec.MultVAE):
            sys.exit(f"{bundle} holds a {type(model).__name__}; serve_bench measures a MultVAE bundle")
        bodies = request_bodies(model)
        baseline = in_process(model, bundle, bodies)
        code_table = user_code_paths(model, bodies)

        scripts = {}
        for _, path in ENDPOINTS:
            body_file = work / f"{path.strip('/').replace('/', '_')}.jsonl"
            body_file.write_text("\n".join(bodies[path]) + "\n")
            scripts[path] = work / f"{body_file.stem}.lua"
            scripts[path].write_text(LUA % (body_file, path))

        rows = []
        for workers in args.workers:
            port = free_port()
            server = start_server(bundle, port, workers)
            url = f"http://127.0.0.1:{port}"
            try:
                for name, path in ENDPOINTS:
                    wrk(url, scripts[path], max(args.concurrency), 2)  # warm-up, not reported
                    for c in args.concurrency:
                        load = load_average()
                        result = parse_wrk(wrk(url, scripts[path], c, args.seconds))
                        rows.append({"endpoint": name, "workers": workers, "clients": c, **result,
                                     "in-process handler ms": round(baseline[path]["handler ms"], 3),
                                     "in-process API ms": round(baseline[path]["API ms"], 3), "load": round(load, 2)})
                        print(rows[-1], flush=True)
            finally:
                stop_server(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = pd.DataFrame(rows).round({"req/s": 0, "p50 ms": 2, "p99 ms": 2})
    table["req/s"] = table["req/s"].astype(int)
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    goals = goal_lines(table)
    command = "AEREC_DATA_HOME=../shared/data python benchmarks/serve_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        f"Machine: {machine()}",
        f"Command: `{command.strip()}`",
        f"Model: MultVAE (defaults, seed 0, early stopping) on protocol A1 seed 0 of MovieLens-100K "
        f"({len(model.users_)} users x {len(model.items_)} items, user code {model.network_.code_dim}-d, exact "
        f"inner-product FAISS index); k=10",
        f"Server: uvicorn ({http}, {loop}), `aerec.server:app_from_env`; load by wrk (1 thread), {args.seconds} s per row "
        f"after a 2 s warm-up, on the same 2 cores. Load average (1 min) before the benchmark started: {load_before:.2f}; "
        f"before each row: column `load` (it counts this benchmark's own server and wrk too, about +1.5 while they run).",
        "", markdown(table, index=False), "",
        "in-process handler ms: the endpoint's own work without HTTP (pydantic parsing of the same JSON body, id lookup, "
        "user code, FAISS search with the seen items excluded, response dict); in-process API ms: the public DataFrame "
        "call (`recommend([user])`, `recommend_for_history(df)`, via the index). Both are the baseline for the HTTP rows.",
        "", markdown(code_table, index=False), "",
        *goals,
    ])
    return emit(text, args.out)


def goal_lines(table: pd.DataFrame) -> list[str]:
    """The issue's goals, checked against the rows of this run."""
    lines = ["Goals (issue 8), per worker count:"]
    for workers, rows in table.groupby("workers"):
        known = rows[(rows["endpoint"] == "known user") & (rows["clients"] == 32)]
        fold = rows[rows["endpoint"] == "fold-in, 50 items"]
        if len(known):
            k = known.iloc[0]
            lines.append(f"- {workers} worker(s): known user at 32 clients p99 {k['p99 ms']} ms (goal <= 10: "
                         f"{'met' if k['p99 ms'] <= 10 else 'not met'}), {k['req/s']} req/s (goal >= 1,500: "
                         f"{'met' if k['req/s'] >= 1500 else 'not met'})")
        if len(fold):
            worst = fold["p99 ms"].max()
            lines.append(f"- {workers} worker(s): fold-in p99 at most {worst} ms over {sorted(fold['clients'])} clients "
                         f"(goal <= 20: {'met' if worst <= 20 else 'not met'}; at 32 clients "
                         f"{fold[fold['clients'] == 32]['p99 ms'].max()} ms)")
    return lines


if __name__ == "__main__":
    main()
