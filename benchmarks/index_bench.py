"""Protocol D, index: build time, memory, queries/s and recall@10 of `aerec.EmbeddingIndex`.

For each size (10^4, 10^5, 10^6 by default) it indexes synthetic clustered vectors (a Gaussian
mixture, d=64, float32) as ``flat``, ``ivf`` and ``hnsw`` (the approximate ones tuned by the index
itself to ``--recall-target`` recall@10), and measures, in the same run:

- build seconds (training, adding and tuning) and index memory (bytes of ``faiss.serialize_index``);
- queries/s single-threaded (``faiss.omp_set_num_threads(1)``, one query at a time) and batched
  (all threads, one batch of ``--batch`` queries), both on the FAISS index itself, and batched
  through ``EmbeddingIndex.search`` (which also builds the DataFrame of the user's ids);
- recall@10 on fresh queries from the same mixture, against exact search (the flat index);
- the ratio of each QPS to numpy brute force (``queries @ X.T`` + ``argpartition``) timed the same
  way (one query at a time with BLAS limited to one thread; batches of 64 queries with all threads).

Timed loops run for at least 2 s (cycling through the queries) and stop after ``--budget`` seconds
(10x that for batches), so the slow exact baselines at 10^6 time fewer queries than the others; the
CSV says how many each row timed.

Usage::

    nice python benchmarks/index_bench.py --sizes 10000 100000 1000000 --out /tmp/index_bench

writes ``index_bench.md`` (machine, table, notes), ``index_bench.csv``, ``index_bench_sweep.csv``
(recall and QPS over nprobe / efSearch) and ``index_bench.png`` (recall vs QPS, with matplotlib).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source tree
from aerec.index import EmbeddingIndex  # noqa: E402

K = 10


# --- data -----------------------------------------------------------------------------------------
def mixture(n: int, n_queries: int, d: int, centres: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` indexed vectors and ``n_queries`` fresh queries from one Gaussian mixture.

    Centres are standard normal; cluster sizes follow a power law (weight of the r-th centre
    ~ r^-0.5); each cluster has its own spread (0.5 to 1.5); the noise variance decays over the
    dimensions (1/j, total d), as learned codes tend to. Clusters overlap, so that IVF and HNSW
    need tuning to reach a high recall (with centres twice as far apart, nprobe=4 or efSearch=16
    already give 0.95).
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=1.0, size=(centres, d)).astype(np.float32)
    weights = 1.0 / np.sqrt(np.arange(1, centres + 1))
    weights /= weights.sum()
    spread = rng.uniform(0.5, 1.5, size=centres).astype(np.float32)
    spectrum = 1.0 / np.sqrt(np.arange(1, d + 1))
    spectrum = (spectrum * np.sqrt(d / np.sum(spectrum**2))).astype(np.float32)  # total variance d
    total = n + n_queries
    labels = rng.choice(centres, size=total, p=weights)
    out = np.empty((total, d), dtype=np.float32)
    for start in range(0, total, 200_000):
        stop = min(start + 200_000, total)
        noise = rng.standard_normal((stop - start, d), dtype=np.float32) * spectrum
        out[start:stop] = means[labels[start:stop]] + spread[labels[start:stop], None] * noise
    return out[:n], out[n:]


# --- numpy brute force (the baseline) -------------------------------------------------------------
class NumpyBruteForce:
    """Exact top-k by ``queries @ X.T`` and ``argpartition``, scores as EmbeddingIndex defines them."""

    def __init__(self, X: np.ndarray, metric: str):
        self.metric = metric
        self.X = X / np.linalg.norm(X, axis=1, keepdims=True) if metric == "cosine" else X
        self.half_sq_norms = 0.5 * np.einsum("ij,ij->i", X, X) if metric == "l2" else None

    def search(self, Q: np.ndarray, k: int) -> np.ndarray:
        if self.metric == "cosine":
            Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
        S = Q @ self.X.T
        if self.half_sq_norms is not None:
            S -= self.half_sq_norms  # q·x - |x|²/2 ranks like -|q - x|²
        part = np.argpartition(-S, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1)
        return np.take_along_axis(part, order, axis=1)


# --- timing ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def one_thread():
    """FAISS's OpenMP and numpy's BLAS limited to one thread."""
    try:
        from threadpoolctl import threadpool_limits
        blas = threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover - without threadpoolctl BLAS keeps its threads
        blas = None
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
        if blas is not None:
            blas.restore_original_limits()


def qps_one_at_a_time(search, Q: np.ndarray, budget: float, min_seconds: float = 2.0) -> tuple[float, int]:
    """Queries/s searching one query at a time, single-threaded.

    Cycles through ``Q`` until it has done all of them and ``min_seconds`` have passed, or stops
    early once ``budget`` seconds have passed. Returns the rate and the number of queries timed.
    """
    with one_thread():
        search(Q[:1])  # warm-up
        done, start = 0, time.perf_counter()
        while True:
            i = done % len(Q)
            search(Q[i:i + 1])
            done += 1
            elapsed = time.perf_counter() - start
            if elapsed > budget or (done >= len(Q) and elapsed >= min_seconds):
                return done / elapsed, done


def qps_batched(search, Q: np.ndarray, budget: float, chunk: int | None = None, collect: list | None = None,
                min_seconds: float = 2.0) -> tuple[float, int]:
    """Queries/s for ``Q`` searched as one batch (or in chunks of ``chunk``), with all threads.

    Repeats like :func:`qps_one_at_a_time`; the answers of the first pass go to ``collect``.
    """
    chunk = chunk or len(Q)
    search(Q[:min(chunk, 16)])  # warm-up: starts the thread pools
    done, start = 0, time.perf_counter()
    while True:
        i = done % len(Q)
        part = Q[i:i + chunk]
        answer = search(part)
        if collect is not None and done < len(Q):
            collect.append(answer)
        done += len(part)
        elapsed = time.perf_counter() - start
        if elapsed > budget or (done >= len(Q) and elapsed >= min_seconds):
            return done / elapsed, done


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2).sum(axis=1)
    return float(np.mean(hits / truth.shape[1]))


def set_search_param(index: faiss.Index, name: str, value: int) -> None:
    if name == "nprobe":
        faiss.extract_index_ivf(index).nprobe = value
    else:
        faiss.downcast_index(index).hnsw.efSearch = value


# --- one size -------------------------------------------------------------------------------------
def bench_size(n: int, args, log) -> tuple[list[dict], list[dict]]:
    rows, sweep = [], []
    t = time.perf_counter()
    X, Q = mixture(n, args.batch, args.dim, args.centres, args.seed)
    log(f"n={n:,}: data generated in {time.perf_counter() - t:.1f}s")
    Q_single = Q[:args.queries]

    # numpy brute force first: it is the baseline every ratio refers to
    numpy_bf = NumpyBruteForce(X, args.metric)
    np_single, np_single_n = qps_one_at_a_time(lambda q: numpy_bf.search(q, K), Q_single, args.budget)
    answers = []
    chunk = max(1, min(1024, 2**26 // n))  # at most 256 MB of scores at a time
    np_batch_qps, np_batch_n = qps_batched(lambda q: numpy_bf.search(q, K), Q, 2 * args.budget, chunk=chunk,
                                           collect=answers)
    found_np = np.concatenate(answers)
    log(f"n={n:,}: numpy brute force {np_single:.1f} q/s one at a time ({np_single_n} queries), "
        f"{np_batch_qps:.1f} q/s batched ({np_batch_n} queries)")

    truth = None
    for kind in ("flat", "ivf", "hnsw"):
        start = time.perf_counter()
        index = EmbeddingIndex(metric=args.metric, kind=kind, recall_target=args.recall_target,
                               seed=args.seed).build(X)
        build = time.perf_counter() - start
        memory = int(faiss.serialize_index(index.index_).nbytes)
        raw = index.index_
        # FAISS answers with its positions, which follow the rows of X
        id_of = np.append(index.ids_.ids.to_numpy(dtype=np.int64), -1)  # position -1 (no answer) -> -1
        answers = []
        batch_qps, batch_n = qps_batched(lambda q: raw.search(q, K)[1], Q, 10 * args.budget, collect=answers)
        found = id_of[np.concatenate(answers)]
        if truth is None:  # the flat index is exact: its answers are the ground truth
            truth = found
        single_qps, single_n = qps_one_at_a_time(lambda q: raw.search(q, K), Q_single, args.budget)
        api_qps, _ = qps_batched(lambda q: index.search(q, k=K), Q, 10 * args.budget)
        (param, value), = index.search_params_.items() if index.search_params_ else [("", "")]
        rows.append({
            "n": n, "index": kind, "factory": index.factory_, "search_param": f"{param}={value}" if param else "",
            "build_s": build, "memory_bytes": memory, "recall_at_10": recall_at_k(found, truth),
            "measured_recall_at_build": index.measured_recall_,
            "qps_1thread": single_qps, "x_numpy_1thread": single_qps / np_single, "queries_1thread": single_n,
            "qps_batch": batch_qps, "x_numpy_batch": batch_qps / np_batch_qps, "queries_batch": batch_n,
            "qps_batch_search_api": api_qps,
        })
        log(f"n={n:,}: {kind} {index.factory_} {index.search_params_} built in {build:.1f}s, "
            f"recall@10 {rows[-1]['recall_at_10']:.3f}, {single_qps:.0f} q/s 1 thread, {batch_qps:.0f} q/s batched")
        if param:  # recall vs QPS over the search parameter, for the plot
            tuned = int(value)
            for v in _sweep_values(param, index):
                set_search_param(raw, param, v)
                qps, _ = qps_batched(lambda q: raw.search(q, K), Q[:args.sweep_queries], args.budget)
                sweep.append({"n": n, "index": kind, "param": param, "value": v, "qps_batch": qps,
                              "recall_at_10": recall_at_k(id_of[raw.search(Q[:args.sweep_queries], K)[1]],
                                                          truth[:args.sweep_queries])})
            set_search_param(raw, param, tuned)
        del index, raw

    rows.append({
        "n": n, "index": "numpy", "factory": "Q @ X.T + argpartition", "search_param": "",
        "build_s": 0.0, "memory_bytes": int(X.nbytes), "recall_at_10": recall_at_k(found_np, truth[:len(found_np)]),
        "measured_recall_at_build": 1.0,
        "qps_1thread": np_single, "x_numpy_1thread": 1.0, "queries_1thread": np_single_n,
        "qps_batch": np_batch_qps, "x_numpy_batch": 1.0, "queries_batch": np_batch_n,
        "qps_batch_search_api": float("nan"),
    })
    return rows, sweep


def _sweep_values(param: str, index: EmbeddingIndex) -> list[int]:
    if param == "nprobe":
        top = faiss.extract_index_ivf(index.index_).nlist
        return [v for v in (1, 2, 4, 8, 16, 32, 64, 128, 256) if v <= top]
    return [16, 32, 64, 128, 256, 512]


# --- output ---------------------------------------------------------------------------------------
def machine() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = ""
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info
        blas = ", ".join(sorted({f"{i['internal_api']} {i.get('version') or ''}".strip() for i in threadpool_info()}))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        f"- CPU: {model}; {os.cpu_count()} logical cores, {usable} usable; FAISS OpenMP threads: {faiss.omp_get_max_threads()}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, faiss {faiss.__version__}, BLAS: {blas or 'unknown'}",
        f"- load average at start (1, 5, 15 min): {load}",
    ]


def markdown(table: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "n": table["n"].map(lambda v: f"{v:,}"),
        "index": table["index"],
        "factory": table["factory"],
        "search param": table["search_param"],
        "build s": table["build_s"].map(lambda v: f"{v:.1f}"),
        "memory MB": (table["memory_bytes"] / 2**20).map(lambda v: f"{v:.1f}"),
        "recall@10": table["recall_at_10"].map(lambda v: f"{v:.3f}"),
        "QPS 1 thread": table["qps_1thread"].map(lambda v: f"{v:,.0f}"),
        "× numpy 1 thread": table["x_numpy_1thread"].map(lambda v: f"{v:.1f}"),
        "QPS batch": table["qps_batch"].map(lambda v: f"{v:,.0f}"),
        "× numpy batch": table["x_numpy_batch"].map(lambda v: f"{v:.1f}"),
        "QPS batch via search()": table["qps_batch_search_api"].map(lambda v: "" if np.isnan(v) else f"{v:,.0f}"),
    })
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "|".join("---" for _ in shown.columns) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


def goal(table: pd.DataFrame, target: float) -> str:
    n = table["n"].max()
    at = table[(table["n"] == n) & table["index"].isin(["ivf", "hnsw"])]
    flat_batch = table.loc[(table["n"] == n) & (table["index"] == "flat"), "qps_batch"].iloc[0]
    parts = []
    for row in at.itertuples():
        met = row.recall_at_10 >= target and row.x_numpy_batch >= 20
        parts.append(f"{row.factory} ({row.search_param}): recall@10 {row.recall_at_10:.3f}, "
                     f"{row.x_numpy_batch:.1f}× numpy batched, {row.qps_batch / flat_batch:.1f}× FAISS flat batched, "
                     f"{row.x_numpy_1thread:.1f}× numpy one query at a time -> {'met' if met else 'NOT met'}")
    return (f"Goal at n={n:,} (recall@10 >= {target} with >= 20× the batched QPS of numpy exact search):\n"
            + "\n".join(f"- {p}" for p in parts))


def plot(table: pd.DataFrame, sweep: pd.DataFrame, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = sorted(table["n"].unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
    for ax, n in zip(axes[0], sizes):
        for kind, marker in (("ivf", "o-"), ("hnsw", "s-")):
            part = sweep[(sweep["n"] == n) & (sweep["index"] == kind)]
            if len(part):
                ax.plot(part["recall_at_10"], part["qps_batch"], marker, label=f"{kind} ({part['param'].iloc[0]} sweep)")
        for kind, marker in (("flat", "k^"), ("numpy", "rv")):
            row = table[(table["n"] == n) & (table["index"] == kind)]
            ax.plot(row["recall_at_10"], row["qps_batch"], marker, markersize=9, label=f"{kind} (exact)")
        ax.set_xscale("linear")
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries/s (batched)")
        ax.set_title(f"n = {n:,}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: int(float(s)), nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/index"), help="directory for the outputs")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--centres", type=int, default=1000)
    parser.add_argument("--metric", choices=["ip", "l2", "cosine"], default="ip")
    parser.add_argument("--recall-target", type=float, default=0.95)
    parser.add_argument("--queries", type=int, default=1000, help="queries timed one at a time (at most)")
    parser.add_argument("--batch", type=int, default=5000, help="queries in the batch (also the recall queries)")
    parser.add_argument("--sweep-queries", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds a one-at-a-time loop may take")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    header = ["# EmbeddingIndex: recall@10 and queries/s (protocol D, index)", "", *machine(),
              f"- data: Gaussian mixture, d={args.dim}, {args.centres} centres, float32; metric={args.metric}; "
              f"{args.batch} fresh queries from the same mixture; k={K}; recall_target={args.recall_target}; "
              f"seed={args.seed}",
              f"- command: {' '.join([Path(sys.executable).name, *sys.argv])}"]
    print("\n".join(header), flush=True)

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    rows, sweep = [], []
    for n in args.sizes:
        size_rows, size_sweep = bench_size(n, args, log)
        rows += size_rows
        sweep += size_sweep
    table, sweep = pd.DataFrame(rows), pd.DataFrame(sweep)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    notes = [
        "Notes:",
        "- recall@10 is measured on the fresh queries against the flat index (exact); "
        "'measured_recall_at_build' in the CSV is what the index measured when tuning, on a held-out sample of its own vectors.",
        "- QPS 1 thread: one query at a time, FAISS and BLAS limited to one thread; QPS batch: one batch, all threads "
        "(numpy in chunks of up to 1024 queries, at most 256 MB of scores). Loops stop after the time budget: see queries_1thread / queries_batch in the CSV "
        "for how many queries each row timed.",
        "- QPS batch via search(): the same batch through EmbeddingIndex.search, which also maps positions to ids "
        "and builds the DataFrame.",
        "- build s includes training, adding and the recall tuning.",
        f"- load average at end: {load}; total run {time.perf_counter() - started:.0f}s.",
    ]
    text = "\n".join([*header, "", markdown(table), "", goal(table, args.recall_target), "", *notes])
    print("\n" + text.split("\n", len(header) + 1)[-1], flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "index_bench.md").write_text(text + "\n")
    table.to_csv(args.out / "index_bench.csv", index=False)
    sweep.to_csv(args.out / "index_bench_sweep.csv", index=False)
    wrote_plot = plot(table, sweep, args.out / "index_bench.png")
    print(f"\nwrote {args.out}/index_bench.md, .csv, _sweep.csv" + (", .png" if wrote_plot else " (no matplotlib: no plot)"))


if __name__ == "__main__":
    main()
