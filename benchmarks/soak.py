"""Soak test of the HTTP server: a long mixed load on loopback, server errors and memory growth.

Gets a Mult-VAE bundle (``--bundle DIR`` reuses a saved one; otherwise ``aerec.MultVAE(seed=0)`` is
fitted on protocol A1 seed 0 of MovieLens-100K with early stopping on its validation split, as in
``serve_bench.py``, and saved to a temporary directory, or to ``--keep-bundle DIR``), starts
``aerec.server`` under uvicorn (1 worker, ``--no-access-log``, ``AEREC_MAX_BODY_BYTES=65536``) on a
free 127.0.0.1 port and drives it with wrk (Debian package ``wrk``) for ``--seconds`` at
``--connections`` concurrent clients, after a ``--warmup`` of the same load. Every wrk thread sends
the same fixed cycle of 20 requests, over and over:

* 11 known users, ``POST /recommend`` (55%, answered 200),
* 5 fold-ins of 20 to 50 known items, ``POST /recommend/history`` (25%, 200),
* 2 user ids the model does not know, ``POST /recommend`` (10%, 404),
* 1 malformed JSON body, ``POST /recommend`` (5%, 422),
* 1 valid JSON body of about 100 KB, over the server's 64 KiB body limit (5%, 413).

wrk's Lua callbacks count the responses by status. The server process's resident memory (VmRSS in
/proc) is read after the warm-up, every ``--sample-every`` seconds during the soak and at its end.

In the same run, the throughput of known-user ``POST /recommend`` alone (``--floor-seconds`` after
a 2 s warm-up, same connections) is compared with a floor: a bare FastAPI app, served by uvicorn
with the same options, whose ``POST /recommend`` parses the same pydantic request model and returns
a constant body, one real aerec ``/recommend`` response of the median size. Goals: no 5xx, RSS
growth under 5% over the soak, aerec at 70% or more of the floor's requests/s.

The machine has 2 cores, shared by the server, wrk and whatever else runs: the 1-minute load
average is recorded at the start and at the end.

    AEREC_DATA_HOME=../shared/data python benchmarks/soak.py [--seconds 600] [--connections 32]
        [--floor-seconds S] [--bundle DIR | --keep-bundle DIR] [--out benchmarks/results/soak.md]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
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
from serve_bench import fit_bundle, free_port, load_average, parse_wrk, stop_server  # noqa: E402

BODY_LIMIT = 65_536  # the server's max_body_bytes in this test (AEREC_MAX_BODY_BYTES)
OVERSIZED_BYTES = 100_000

# kind: (path, share of the cycle out of 20, status the server should answer)
MIX = {
    "known": ("/recommend", 11, 200),
    "history": ("/recommend/history", 5, 200),
    "unknown": ("/recommend", 2, 404),
    "malformed": ("/recommend", 1, 422),
    "oversized": ("/recommend/history", 1, 413),
}
LETTERS = {"known": "K", "history": "H", "unknown": "U", "malformed": "M", "oversized": "O"}

MIXED_LUA = """
-- the fixed cycle of request kinds; each kind cycles through its own bodies
local cycle = {%(cycle)s}
local paths = {%(paths)s}
local files = {%(files)s}
local bodies = {}
for kind, file in pairs(files) do
  bodies[kind] = {}
  for line in io.lines(file) do bodies[kind][#bodies[kind] + 1] = line end
end
local headers = {["Content-Type"] = "application/json"}
local n = 0
local sent = {}

request = function()
  n = n + 1
  local kind = cycle[((n - 1) %% #cycle) + 1]
  local i = (sent[kind] or 0) + 1
  sent[kind] = i
  local list = bodies[kind]
  return wrk.format("POST", paths[kind], headers, list[((i - 1) %% #list) + 1])
end

-- each wrk thread has its own Lua state: counts are per thread, summed in done()
counts = {}
response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

local threads = {}
setup = function(thread)
  threads[#threads + 1] = thread
end

done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("soak-status %%d %%d\\n", status, count))
  end
end
"""

KNOWN_LUA = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/json"}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/recommend", headers, bodies[((n - 1) %% #bodies) + 1])
end
"""

BARE_APP = '''"""The floor: a bare FastAPI app parsing aerec's /recommend request model and answering a constant body."""
from pathlib import Path
from typing import Union

from fastapi import FastAPI, Response
from pydantic import BaseModel, Field, StrictInt, StrictStr

Id = Union[StrictInt, StrictStr]
BODY = Path(__file__).with_name("response.json").read_bytes()


class RecommendRequest(BaseModel):  # as aerec.server.RecommendRequest
    user: Id = Field(description="The user's id, as in the training data.")
    k: int = Field(10, ge=1, description="How many items.")
    exclude_seen: bool = Field(True, description="Leave out items the user interacted with in training.")


def create():
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/recommend")
    async def recommend(body: RecommendRequest):
        return Response(content=BODY, media_type="application/json")

    return app
'''


def cycle_of(mix: dict) -> list[str]:
    """The kinds in an evenly spread order with the mix's shares (smooth weighted round robin)."""
    weights = {kind: share for kind, (_, share, _) in mix.items()}
    total, current, order = sum(weights.values()), dict.fromkeys(weights, 0), []
    for _ in range(total):
        for kind in current:
            current[kind] += weights[kind]
        pick = max(current, key=current.get)
        current[pick] -= total
        order.append(pick)
    return order


def request_bodies(model, n: int = 500) -> dict[str, list[str]]:
    rng = np.random.default_rng(0)
    users = np.asarray(model.users_.ids)
    items = np.asarray(model.items_.ids)
    known_users = set(users.tolist())
    unknown = [10_000_000 + i for i in range(n)]
    assert not known_users.intersection(unknown)
    some_user = int(users[0])
    oversized, size = {"items": [], "k": 10}, 0
    while size <= OVERSIZED_BYTES:
        oversized["items"].extend(int(i) for i in items[:1000])
        size = len(json.dumps(oversized))
    return {
        "known": [json.dumps({"user": int(u), "k": 10}) for u in rng.choice(users, size=n)],
        "history": [json.dumps({"items": [int(i) for i in rng.choice(items, int(rng.integers(20, 51)), replace=False)],
                                "k": 10}) for _ in range(n)],
        "unknown": [json.dumps({"user": u, "k": 10}) for u in unknown],
        "malformed": [f'{{"user": {some_user}, "k": 10', f'{{"user": {some_user}, "k": 10,}}',
                      f"{{'user': {some_user}, 'k': 10}}", f'{{"user": {some_user} "k": 10}}',
                      f"user={some_user}&k=10", f'{{"user": {some_user}, "k": }}'],
        "oversized": [json.dumps(oversized)],
    }


def start_uvicorn(target: str, port: int, env: dict, app_dir: Path | None = None) -> subprocess.Popen:
    """``uvicorn TARGET --factory`` with serve_bench's options, in its own session; returns once /health answers."""
    import httpx

    command = [sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--log-level", "warning", "--no-access-log"]
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    server = subprocess.Popen(command, env={**os.environ, **env}, start_new_session=True)
    deadline = time.time() + 180
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.time() > deadline:
            stop_server(server)
            raise SystemExit(f"the server {target} did not start")
        time.sleep(0.3)


def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS), MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def serving_pid(server: subprocess.Popen) -> int:
    """The process answering requests: with one worker, uvicorn serves in the process it started in."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    if children:
        raise RuntimeError(f"uvicorn process {server.pid} has children {children}: expected a single process")
    return server.pid


def run_wrk(url: str, script: Path, connections: int, seconds: int, threads: int, timeout: int,
            sample=None, every: float = 10) -> tuple[str, list[tuple[float, float]]]:
    """wrk's output, and ``(seconds since start, sample())`` every ``every`` seconds while it runs."""
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", f"{timeout}s",
               "--latency", "-s", str(script), url]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    samples = []
    try:
        start = time.monotonic()
        due = start + every
        while True:
            try:
                out, err = wrk.communicate(timeout=max(0.05, due - time.monotonic()) if sample else seconds + 60)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > start + seconds + 60:
                    raise RuntimeError("wrk ran a minute past its duration") from None
                if sample is not None and time.monotonic() >= due:
                    samples.append((round(time.monotonic() - start), sample()))
                    due += every
    finally:
        if wrk.poll() is None:
            os.killpg(wrk.pid, signal.SIGKILL)
            wrk.wait()
    if wrk.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed ({wrk.returncode}): {err.strip() or out.strip()}")
    return out, samples


def parse_soak(text: str) -> dict:
    """serve_bench's numbers (req/s, p50, p99), plus requests served, non-2xx responses, socket errors and the
    status counts printed by the mixed script's Lua ``done``."""
    row = parse_wrk(text)
    served = re.search(r"(\d+) requests in ", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"requests": int(served.group(1)), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "req/s": row["req/s"], "p50 ms": row["p50 ms"], "p99 ms": row["p99 ms"],
            "sockets": dict(zip(("connect", "read", "write", "timeout"),
                                (int(v) for v in sockets.groups()) if sockets else (0, 0, 0, 0))),
            "status": {int(s): int(c) for s, c in re.findall(r"^soak-status (\d+) (\d+)$", text, re.M)}}


def preflight(url: str, bodies: dict) -> dict[str, int]:
    """One request of each kind: the status the server answers (or the transport error)."""
    import httpx

    seen = {}
    with httpx.Client(base_url=url, timeout=10, headers={"Content-Type": "application/json"}) as client:
        for kind, (path, _, _) in MIX.items():
            try:
                seen[kind] = client.post(path, content=bodies[kind][0].encode()).status_code
            except httpx.TransportError as exc:
                seen[kind] = f"{type(exc).__name__}"
    return seen


def typical_response(url: str, bodies: list[str], n: int = 51) -> bytes:
    """The body of a real known-user /recommend response of median size (over ``n`` users)."""
    import httpx

    with httpx.Client(base_url=url, timeout=10, headers={"Content-Type": "application/json"}) as client:
        answers = sorted((client.post("/recommend", content=b.encode()).content for b in bodies[:n]), key=len)
    return answers[len(answers) // 2]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600, help="length of the mixed soak (default 600)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent wrk connections (default 32)")
    parser.add_argument("--floor-seconds", type=int, default=None,
                        help="length of each like-for-like /recommend phase, aerec and bare FastAPI (default: --seconds)")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of the mixed load before the soak (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--timeout", type=int, default=2, help="wrk's request timeout in seconds (default 2, wrk's own)")
    parser.add_argument("--sample-every", type=float, default=10, help="seconds between RSS samples (default 10)")
    bundles = parser.add_mutually_exclusive_group()
    bundles.add_argument("--bundle", type=Path, default=None, help="a saved Mult-VAE bundle to serve (default: fit one)")
    bundles.add_argument("--keep-bundle", type=Path, default=None,
                         help="where to save the fitted bundle, to reuse with --bundle (default: a temporary directory)")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report there")
    args = parser.parse_args(argv)
    floor_seconds = args.floor_seconds or args.seconds
    if shutil.which("wrk") is None:
        sys.exit("soak.py needs wrk on the PATH (Debian: apt-get install -y wrk)")
    if args.keep_bundle is not None and args.keep_bundle.exists():
        sys.exit(f"{args.keep_bundle} exists: serve it with --bundle, or give --keep-bundle a new directory")
    # stop everything started here on SIGTERM and SIGHUP too (Ctrl-C raises KeyboardInterrupt): unwind through the
    # finally blocks
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))

    load_start = load_average()
    work = Path(tempfile.mkdtemp(prefix="aerec-soak-"))
    started: list[subprocess.Popen] = []
    try:
        bundle = args.bundle
        if bundle is None:
            bundle = args.keep_bundle or work / "bundle"
            print(f"fitting MultVAE(seed=0) on protocol A1 seed 0, saving it to {bundle}", flush=True)
            fit_bundle(bundle)
        model = aerec.load(bundle)
        if not isinstance(model, aerec.MultVAE):
            sys.exit(f"{bundle} holds a {type(model).__name__}; soak.py serves a MultVAE bundle")
        bodies = request_bodies(model)
        files = {}
        for kind, lines in bodies.items():
            files[kind] = work / f"{kind}.jsonl"
            files[kind].write_text("\n".join(lines) + "\n")
        cycle = cycle_of(MIX)
        mixed_lua = work / "mixed.lua"
        mixed_lua.write_text(MIXED_LUA % {
            "cycle": ", ".join(f'"{k}"' for k in cycle),
            "paths": ", ".join(f'{k} = "{p}"' for k, (p, _, _) in MIX.items()),
            "files": ", ".join(f'{k} = "{files[k]}"' for k in MIX)})
        known_lua = work / "known.lua"
        known_lua.write_text(KNOWN_LUA % files["known"])

        # aerec: pre-flight, warm-up, mixed soak with RSS samples, then known-user /recommend alone
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_uvicorn("aerec.server:app_from_env", port,
                               {"AEREC_BUNDLE": str(bundle), "AEREC_MAX_BODY_BYTES": str(BODY_LIMIT)})
        started.append(server)
        pid = serving_pid(server)
        seen = preflight(url, bodies)
        wrong = {k: s for k, s in seen.items() if s != MIX[k][2]}
        if wrong:
            raise SystemExit("the server does not answer the mix as designed: "
                             + ", ".join(f"{k} got {s}, expected {MIX[k][2]}" for k, s in wrong.items()))
        constant = typical_response(url, bodies["known"])
        print(f"pre-flight {seen}; typical /recommend response {len(constant)} bytes", flush=True)
        if args.warmup > 0:
            run_wrk(url, mixed_lua, args.connections, args.warmup, args.threads, args.timeout)
        load_soak = load_average()
        rss_start = rss_mib(pid)
        print(f"soak: {args.seconds} s at {args.connections} connections; RSS {rss_start:.1f} MiB", flush=True)
        out, samples = run_wrk(url, mixed_lua, args.connections, args.seconds, args.threads, args.timeout,
                               sample=lambda: rss_mib(pid), every=args.sample_every)
        rss_end = rss_mib(pid)
        soak = parse_soak(out)
        print(f"soak done: {soak}; RSS {rss_end:.1f} MiB", flush=True)

        floor = []
        run_wrk(url, known_lua, args.connections, 2, args.threads, args.timeout)
        floor.append(("aerec, `aerec.server:app_from_env`", load_average(),
                      parse_soak(run_wrk(url, known_lua, args.connections, floor_seconds, args.threads, args.timeout)[0])))
        stop_server(server)

        # the floor: a bare FastAPI app under the same uvicorn options and the same load
        (work / "bare_floor.py").write_text(BARE_APP)
        (work / "response.json").write_bytes(constant)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        bare = start_uvicorn("bare_floor:create", port, {}, app_dir=work)
        started.append(bare)
        run_wrk(url, known_lua, args.connections, 2, args.threads, args.timeout)
        floor.append(("bare FastAPI, constant body", load_average(),
                      parse_soak(run_wrk(url, known_lua, args.connections, floor_seconds, args.threads, args.timeout)[0])))
        stop_server(bare)
        print(f"like-for-like: {floor}", flush=True)
    finally:
        for process in started:
            stop_server(process)
        shutil.rmtree(work, ignore_errors=True)
    load_end = load_average()

    text = report(args, argv, model, cycle, soak, (rss_start, rss_end, samples), floor, len(constant),
                  (load_start, load_soak, load_end), floor_seconds)
    return emit(text, args.out)


def report(args, argv, model, cycle, soak, rss, floor, response_bytes, loads, floor_seconds) -> str:
    rss_start, rss_end, samples = rss
    rss_max = max([rss_start, rss_end, *(v for _, v in samples)])
    growth = (rss_end - rss_start) / rss_start * 100
    served = soak["requests"]
    status = soak["status"]
    counted = sum(status.values())
    designed = {code: 0 for code in (200, 404, 413, 422)}
    for _, weight, code in MIX.values():
        designed[code] += weight / len(cycle)
    server_errors = sum(c for s, c in status.items() if s >= 500)
    other = sum(c for s, c in status.items() if s not in designed and s < 500)
    sockets = soak["sockets"]

    def share(count: int) -> str:
        return f"{count:,} ({count / counted:.1%})" if counted else str(count)

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    mixed = pd.DataFrame([
        {"": "requests served", "value": f"{served:,}", "design / goal": f"{args.seconds} s, {args.connections} connections"},
        {"": "req/s", "value": f"{soak['req/s']:,.0f}", "design / goal": ""},
        {"": "p50 latency, ms", "value": soak["p50 ms"], "design / goal": "all kinds of request together"},
        {"": "p99 latency, ms", "value": soak["p99 ms"], "design / goal": ""},
        {"": "200", "value": share(status.get(200, 0)),
         "design / goal": f"{designed[200]:.0%} (known users 55%, fold-in 25%)"},
        {"": "404", "value": share(status.get(404, 0)), "design / goal": f"{designed[404]:.0%} (unknown users)"},
        {"": "413", "value": share(status.get(413, 0)),
         "design / goal": f"{designed[413]:.0%} (~{OVERSIZED_BYTES // 1000} KB bodies, limit {BODY_LIMIT} bytes)"},
        {"": "422", "value": share(status.get(422, 0)), "design / goal": f"{designed[422]:.0%} (malformed JSON)"},
        {"": "5xx", "value": share(server_errors), "design / goal": f"goal 0: {met(server_errors == 0)}"},
        {"": "other statuses", "value": share(other), "design / goal": "0"},
        {"": "socket errors (connect/read/write/timeout)",
         "value": "/".join(str(sockets[k]) for k in ("connect", "read", "write", "timeout")), "design / goal": "0"},
    ])
    memory = pd.DataFrame([{"RSS start MiB": round(rss_start, 1), "RSS end MiB": round(rss_end, 1),
                            "RSS max MiB": round(rss_max, 1), "growth %": round(growth, 2),
                            "goal": f"growth < 5%: {met(growth < 5)}"}])
    aerec_rps, bare_rps = floor[0][2]["req/s"], floor[1][2]["req/s"]
    ratio = aerec_rps / bare_rps if bare_rps else float("nan")
    compare = pd.DataFrame([{"server": name, "req/s": f"{r['req/s']:,.0f}",
                             "share of the floor": f"{r['req/s'] / bare_rps:.0%}" if bare_rps else "n/a",
                             "goal": "" if i else f">= 70%: {met(ratio >= 0.7)}",
                             "p50 ms": r["p50 ms"], "p99 ms": r["p99 ms"],
                             "requests": f"{r['requests']:,}",
                             "non-2xx responses": r["non2xx"], "socket errors": sum(r["sockets"].values()),
                             "load before": round(load, 2)} for i, (name, load, r) in enumerate(floor)])
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    data_home = os.environ.get("AEREC_DATA_HOME")
    command = (f"AEREC_DATA_HOME={data_home} " if data_home else "") + "python benchmarks/soak.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    load_start, load_soak, load_end = loads
    return "\n".join([
        "# Soak test of the HTTP server",
        "",
        f"Machine: {machine()}",
        f"Command: `{command.strip()}`",
        f"Model: MultVAE (defaults, seed 0, early stopping) on protocol A1 seed 0 of MovieLens-100K "
        f"({len(model.users_)} users x {len(model.items_)} items, exact inner-product FAISS index); k=10",
        f"Server: uvicorn ({http}, {loop}), 1 worker, `--no-access-log`, `aerec.server:app_from_env` with "
        f"AEREC_MAX_BODY_BYTES={BODY_LIMIT}; load by wrk ({args.threads} thread{'s' if args.threads > 1 else ''}, "
        f"{args.connections} connections, {args.timeout} s timeout) over loopback, on the same 2 cores.",
        f"Load average (1 min): {load_start:.2f} at the start, {load_soak:.2f} when the soak began, {load_end:.2f} at the end "
        f"(it counts this test's own server and wrk, about +1.5 while they run).",
        "",
        f"## Mixed soak: {args.seconds} s after a {args.warmup} s warm-up",
        "",
        "Every wrk thread repeats one cycle of 20 requests: `" + "".join(LETTERS[k] for k in cycle) + "` (K known user, "
        "H fold-in of 20-50 items, U unknown user, M malformed JSON, O oversized body). Statuses counted by wrk's "
        "Lua `response` callback.",
        "",
        markdown(mixed, index=False),
        "",
        "## Server memory (VmRSS of the uvicorn process)",
        "",
        markdown(memory, index=False),
        "",
        f"Start: after the warm-up; samples every {args.sample_every:g} s (MiB): "
        + (", ".join(f"{t:g} s {v:.1f}" for t, v in samples) or "none") + ".",
        "",
        f"## Like-for-like: known-user `POST /recommend`, {floor_seconds} s each after a 2 s warm-up",
        "",
        f"The floor is a bare FastAPI app under the same uvicorn options, whose `POST /recommend` parses the same "
        f"pydantic request model (user, k, exclude_seen) and returns a constant body: one real aerec response "
        f"of the median size, {response_bytes} bytes.",
        "",
        markdown(compare, index=False),
        "",
        f"aerec's share of the floor: **{ratio:.0%}** (goal >= 70%: {met(ratio >= 0.7)}).",
        "",
        "Goals:",
        f"- no server errors (5xx) in the soak: {server_errors} ({met(server_errors == 0)})",
        f"- RSS growth over the soak under 5%: {growth:+.2f}% ({met(growth < 5)})",
        f"- known-user `/recommend` at 70% or more of the bare FastAPI floor: {ratio:.0%} ({met(ratio >= 0.7)})",
    ])


if __name__ == "__main__":
    main()
