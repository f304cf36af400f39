"""Issue #16, real sizes on one machine: aerec's recommenders beside implicit's ALS at four scales.

Scales (users x items x interactions, drawn by ``aerec.datasets.synthetic_interactions`` with ``--seed``):
S1 6,000 x 3,700 x 1M, S2 138,000 x 20,000 x 10M, S3 500,000 x 100,000 x 20M, S4 2M x 300,000 x 100M.
Each drawn frame is cached as Parquet in ``--cache-dir`` (default ``~/.cache/aerec-bench/``), named by
its shape and seed. A scale whose data cannot be drawn or read (S4 may not fit in memory) is reported
as such and its models are skipped.

Protocol: 2,000 users with at least 5 interactions (drawn with ``numpy.random.default_rng(seed)``)
are held out of training; of each, a random floor(20%) of their items is held out (at least one, as
in Liang et al., 2018) and the rest is the fold-in history. Quality is NDCG@100 and Recall@20
(hits / min(20, held-out items)) of the top 100 for the history, its items excluded. Every model
trains a fixed ``--epochs`` (ALS its 15 iterations), without validation or early stopping.

Each (scale, model) runs in a subprocess of its own, so that a crash, an out-of-memory kill or a
``--timeout`` is a row of the table, and the memory is that model's: "peak RSS" is the worker's
high-water mark (VmHWM, reset once the data is read and split; ru_maxrss where Linux does not allow
the reset), so it counts the data too (column "peak RSS GiB"); "above data" subtracts the RSS at that moment. TensorFlow is
imported before the data is read for the models that use it (EASE, the Keras models): its import
(seconds and GiB in the header) is in "peak RSS" but neither in "fit s" nor in "above data".

Columns: *fit s* is the whole fit (id mapping and training; since the index became lazy, no FAISS
index: S2 figures measured before then include a flat one, a few seconds; for ALS the CSR matrix and
the 15 iterations). *s/epoch* is the median epoch after the first
(which traces the graph): aerec's ``history_["train_seconds"]``, ALS's fit callback (none for EASE's
closed form). *GFLOP/s* are estimated FLOPs over that time, beside the float32 ``tf.matmul`` rate at
2048³ measured in the same run (before and after the models); they count dense products only:

- MultDAE / MultVAE with the full softmax (none for the sampled ones), per epoch: n_users x (3 x Σ_layers 2·in·out − 2·n_items·width of the first
  layer): forward, weight gradient and (not for the first layer) input gradient of every dense
  layer (``epoch_bench.flops_per_epoch``); softmax, dropout and the sparse-to-dense gather left out.
- EASE, per fit: (1/3 + 1 + 2)·n_items³ (Cholesky, triangular solve against I, L⁻ᵀL⁻¹), over the
  whole fit; the Gram matrix is left out (as in ``ease_bench.py``).
- implicit ALS (conjugate gradient, f factors, c = 3 CG steps), per iteration, both halves:
  2·(n_users + n_items)·f² for the two YᵀY, (c + 1)·2f²·(n_users + n_items) for the YᵀY·p products
  and 2·(c + 1)·4f·nnz for the per-interaction dots and axpys.

*top-100 s*: the top 100 of every training user, seen items excluded (aerec ``top_k`` by the model,
ALS ``recommend``; 1,024 users per call). *index s*: ``build_index("auto")`` (the FAISS factory it
chose, the recall@10 it measured). For an approximate index, *overlap@10* is the share of the exact
top 10 of each held-out user (fold-in, seen items excluded) that ``via="index"`` returns; *overlap@100*
the same for the top 100 with the index rebuilt ``recall_at=100`` (*index @100*: its search parameter
and measured recall); *users/s* are fold-in lists per second through the index and through the model. *save s*, *load s*, *MiB*: ``save`` / ``aerec.load`` and the
bundle's size on disk (ALS: its ``save`` npz plus the id arrays, ``AlternatingLeastSquares.load``).

    AEREC_DATA_HOME=../shared/data nice -n 10 python benchmarks/scale_bench.py --scales S1 S2 \\
        --epochs 10 --out benchmarks/results/scale_bench.md --plot benchmarks/results/scale_bench.png
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, markdown, matmul_rate, reset_peak, rss_peak, vm

import aerec
from aerec.exceptions import CatalogueTooLargeError
from aerec.metrics import metrics_from_hits
from aerec.recommend.keras_base import KerasRecommender

SCALES = {"S1": (6_000, 3_700, 1_000_000), "S2": (138_000, 20_000, 10_000_000),
          "S3": (500_000, 100_000, 20_000_000), "S4": (2_000_000, 300_000, 100_000_000)}
HELD_OUT_USERS, K, BATCH, GIB, MIB = 2_000, 100, 1_024, 2**30, 2**20

#: name -> constructor from the parsed arguments: an aerec Recommender, or an object with ImplicitALS's methods
MODELS = {
    "popularity": lambda a: aerec.Popularity(),
    "EASE": lambda a: aerec.EASE(l2=500.0),
    "ELSA": lambda a: aerec.ELSA(epochs=a.epochs, seed=0),
    # a step costs n_items x code_dim² (AᵀA) whatever the batch: 16x fewer steps per epoch at S4
    "ELSA batch 4096": lambda a: aerec.ELSA(epochs=a.epochs, batch_size=4096, seed=0),
    # the full softmax, and the sampled one that sampled_softmax="auto" picks from 10,000 items
    "MultDAE": lambda a: aerec.MultDAE(epochs=a.epochs, sampled_softmax=None, seed=0),
    "MultDAE sampled": lambda a: aerec.MultDAE(epochs=a.epochs, sampled_softmax=2048, seed=0),
    "MultVAE": lambda a: aerec.MultVAE(epochs=a.epochs, sampled_softmax=None, seed=0),
    "MultVAE sampled": lambda a: aerec.MultVAE(epochs=a.epochs, sampled_softmax=2048, seed=0),
    "implicit ALS": lambda a: ImplicitALS(factors=128, iterations=15, regularization=0.05),
}


class AerecRunner:
    """The benchmark's view of an aerec recommender."""

    def __init__(self, model):
        self.model = model

    def fit(self, train: pd.DataFrame) -> None:
        self.model.fit(train)

    def work(self) -> dict:
        """Seconds per epoch and the GFLOP/s they imply (EASE: of the whole fit)."""
        m = self.model
        if isinstance(m, aerec.EASE):
            return {"GFLOP/s": (1 / 3 + 1 + 2) * m.B_.shape[0] ** 3 / m.fit_seconds_ / 1e9}
        epochs = m.history_.get("train_seconds") or []
        if not epochs:
            return {}
        seconds = float(np.median(epochs[1:] or epochs))
        if getattr(getattr(m, "network_", None), "sampled_softmax", 0):
            return {"s/epoch": seconds}  # the dense count below would be the full softmax's
        try:
            from epoch_bench import flops_per_epoch

            return {"s/epoch": seconds, "GFLOP/s": flops_per_epoch(m) / seconds / 1e9}
        except TypeError:  # no FLOP count for this model
            return {"s/epoch": seconds}

    def top_all(self, k: int, n: int | None = None) -> int:
        ids = self.model.users_.ids[:n]
        for start in range(0, len(ids), BATCH):  # top_k scores all its users at once: batches bound the memory
            self.model.top_k(ids[start:start + BATCH], k=k)
        return len(ids)

    def fold_in(self, histories: list, k: int, via: str = "model") -> list[np.ndarray]:
        recs = []
        for start in range(0, len(histories), BATCH):
            top = self.model.top_k_for_histories(histories[start:start + BATCH], k=k, via=via)
            recs += [top.items[q, :c] for q, c in enumerate(top.counts)]
        return recs

    def build_index(self) -> str:
        index = self.model.build_index("auto").index_
        gave_way = [f"{factory} {recall:.2f}" for factory, recall in index.tried_.items() if factory != index.factory_]
        return f"{index.factory_}, recall {index.measured_recall_:.2f}" + (f" (gave way: {', '.join(gave_way)})" if gave_way else "")

    def index_overlap(self, histories: list, exact: list) -> dict:
        """How much of the exact lists (``exact``: the model's top 100 of the held-out users) the index's lists
        hold, at 10 (the index as ``build_index("auto")`` tuned it, for recall@10) and at 100 (rebuilt with
        ``recall_at=100``), and the users per second each way (fold-in, 1,024 users per call)."""
        if self.model.index_.is_exact:
            return {}
        out = {}
        for k in (10, 100):
            if k == 100:
                self.model.build_index("auto", recall_at=100)
                out["index @100"] = f"{self.model.index_.search_params_}, recall {self.model.index_.measured_recall_:.3f}"
            start = time.perf_counter()
            approx = self.fold_in(histories, k, via="index")
            out[f"index users/s @{k}"] = len(histories) / (time.perf_counter() - start)
            out[f"overlap@{k}"] = float(np.mean([len(set(a.tolist()) & set(e[:k].tolist())) / max(1, min(k, len(e)))
                                                 for a, e in zip(approx, exact)]))
        start = time.perf_counter()
        self.fold_in(histories, 10, via="model")
        out["model users/s @10"] = len(histories) / (time.perf_counter() - start)
        return out

    def save(self, path: Path) -> None:
        self.model.save(path)

    def load(self, path: Path) -> None:
        self.model = None
        gc.collect()
        self.model = aerec.load(path)


class ImplicitALS:
    """implicit's AlternatingLeastSquares on the CSR user x item matrix, 2 threads, BLAS single-threaded."""

    def __init__(self, **params):
        self.params = params

    def fit(self, train: pd.DataFrame) -> None:
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        users, user_ids = pd.factorize(train["user"])
        items, item_ids = pd.factorize(train["item"])
        self.user_ids, self.item_ids = np.asarray(user_ids, dtype=str), np.asarray(item_ids, dtype=str)
        self.X = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)),
                               shape=(len(user_ids), len(item_ids)))
        self.seconds = []
        with threadpool_limits(1, "blas"):  # implicit's own advice: its threads, not OpenBLAS's
            self.model = AlternatingLeastSquares(**self.params, num_threads=2, random_state=0)
            self.model.fit(self.X, show_progress=False, callback=lambda it, sec, loss: self.seconds.append(sec))

    def work(self) -> dict:
        (n_users, n_items), f, c = self.X.shape, self.model.factors, self.model.cg_steps
        flops = 2 * (n_users + n_items) * f**2 * (c + 2) + 2 * (c + 1) * 4 * f * self.X.nnz
        seconds = float(np.median(self.seconds[1:] or self.seconds))
        return {"s/epoch": seconds, "GFLOP/s": flops / seconds / 1e9}

    def top_all(self, k: int, n: int | None = None) -> int:
        users = min(n or self.X.shape[0], self.X.shape[0])
        for start in range(0, users, BATCH):
            stop = min(start + BATCH, users)
            self.model.recommend(np.arange(start, stop), self.X[start:stop], N=k)
        return users

    def fold_in(self, histories: list, k: int) -> list[np.ndarray]:
        cols = pd.Index(self.item_ids).get_indexer(np.concatenate(histories))
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        known = cols >= 0
        H = sp.csr_matrix((np.ones(known.sum(), np.float32), (rows[known], cols[known])),
                          shape=(len(histories), len(self.item_ids)))
        recs = []
        for start in range(0, len(histories), BATCH):
            stop = min(start + BATCH, len(histories))
            ids, _ = self.model.recommend(np.arange(start, stop), H[start:stop], N=k, recalculate_user=True)
            recs += [self.item_ids[r[r >= 0]] for r in ids]
        return recs

    def build_index(self) -> str | None:
        return None  # implicit's ANN wrappers are not part of this comparison

    def save(self, path: Path) -> None:
        path.mkdir()
        self.model.save(path / "als.npz")
        np.savez(path / "ids.npz", users=self.user_ids, items=self.item_ids)

    def load(self, path: Path) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        self.model = None
        gc.collect()
        self.model = AlternatingLeastSquares.load(path / "als.npz")
        with np.load(path / "ids.npz") as z:
            self.user_ids, self.item_ids = z["users"], z["items"]


# --- data -----------------------------------------------------------------------------------------
def data_path(args, scale: str) -> Path:
    users, items, interactions = SCALES[scale]
    return Path(args.cache_dir).expanduser() / f"synthetic_{users}x{items}x{interactions}_seed{args.seed}.parquet"


def split(df: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, list, list]:
    """Training rows, and the fold-in histories and held-out item sets of ``HELD_OUT_USERS`` users."""
    rng = np.random.default_rng(seed)
    counts = df["user"].value_counts()
    eligible = np.sort(np.asarray(counts.index[counts >= 5], dtype=object))
    held = rng.choice(eligible, size=min(HELD_OUT_USERS, len(eligible)), replace=False)
    mask = df["user"].isin(held).to_numpy()
    test = df[mask].iloc[rng.permutation(int(mask.sum()))].sort_values("user", kind="stable")
    rank = test.groupby("user").cumcount().to_numpy()
    out = rank < test.groupby("user")["user"].transform("size").to_numpy() // 5  # floor(20%) >= 1
    histories = test[~out].groupby("user")["item"].agg(list)
    truth = test[out].groupby("user")["item"].agg(set).reindex(histories.index)
    return df[~mask], histories.tolist(), truth.tolist()


def read_split(args, scale: str) -> tuple[pd.DataFrame, list, list]:
    """:func:`split` of the cached frame of ``scale``, with what the split freed in Arrow's pool given back
    (memory no longer held by any frame: not "data")."""
    train, histories, truth = split(pd.read_parquet(data_path(args, scale)), args.seed)
    gc.collect()
    pyarrow.default_memory_pool().release_unused()
    return train, histories, truth


def quality(recs: list, truth: list) -> dict:
    hits = np.zeros((len(truth), K), dtype=bool)
    for u, (items, relevant) in enumerate(zip(recs, truth)):
        hits[u, :len(items)] = [item in relevant for item in items]
    means = metrics_from_hits(hits, [len(t) for t in truth], ["ndcg@100", "recall@20"]).mean()
    return {"NDCG@100": float(means["ndcg@100"]), "Recall@20": float(means["recall@20"])}


# --- workers: one JSON line on stdout ---------------------------------------------------------------
def say(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def data_worker(args, scale: str) -> dict:
    path, start = data_path(args, scale), time.perf_counter()
    if not path.is_file():
        say(f"{scale}: drawing {SCALES[scale]} (seed {args.seed}) into {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        aerec.datasets.synthetic_interactions(*SCALES[scale], seed=args.seed).to_parquet(path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    drawn = time.perf_counter() - start
    df = pd.read_parquet(path)
    train, histories, _ = split(df, args.seed)
    return {"rows": len(df), "users": int(train["user"].nunique()), "items": int(train["item"].nunique()),
            "interactions": len(train), "held out": len(histories), "drawn s": drawn, "MiB": path.stat().st_size / MIB}


def model_worker(args, scale: str, name: str) -> dict:
    model = MODELS[name](args)
    if isinstance(model, (aerec.EASE, KerasRecommender)):
        import tensorflow  # noqa: F401 - its import (see the header) is neither in fit s nor in "above data"
    train, histories, truth = read_split(args, scale)
    base, resettable = vm("VmRSS"), reset_peak()
    runner = AerecRunner(model) if isinstance(model, aerec.recommend.base.Recommender) else model
    row, start = {}, time.perf_counter()
    try:
        runner.fit(train)
    except CatalogueTooLargeError as exc:
        return {"status": "refused: " + str(exc).splitlines()[0]}
    row["fit s"] = time.perf_counter() - start
    say(f"{scale} {name}: fit {row['fit s']:.1f} s")
    row.update(runner.work())
    start = time.perf_counter()
    timed = runner.top_all(K, args.top_users)
    n_users = train["user"].nunique()
    row["top-100 s"] = (time.perf_counter() - start) * n_users / timed  # scaled to all users when --top-users
    row["top-100 timed users"] = timed
    say(f"{scale} {name}: all users' top-100 {row['top-100 s']:.1f} s")
    recs = runner.fold_in(histories, K)
    row.update(quality(recs, truth))
    start = time.perf_counter()
    row["index"] = runner.build_index()
    row["index s"] = time.perf_counter() - start if row["index"] else None
    if row["index"] and hasattr(runner, "index_overlap"):
        row.update(runner.index_overlap(histories, recs))
    with tempfile.TemporaryDirectory(dir=Path(args.cache_dir).expanduser()) as tmp:
        path, start = Path(tmp) / "bundle", time.perf_counter()
        runner.save(path)
        row["save s"] = time.perf_counter() - start
        row["MiB"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MIB
        start = time.perf_counter()
        runner.load(path)
        row["load s"] = time.perf_counter() - start
    if any(not np.array_equal(a, b) for a, b in zip(recs[:50], runner.fold_in(histories[:50], K))):
        row["status"] = "loaded model answers differently"
    peak = vm("VmHWM") if resettable else rss_peak()
    row.update({"peak RSS GiB": peak / GIB, "above data GiB": (peak - base) / GIB})
    say(f"{scale} {name}: done, peak RSS {peak / GIB:.2f} GiB")
    return row


def worker(args) -> dict:
    try:
        if args.worker == "matmul":
            rss, start = vm("VmRSS"), time.perf_counter()
            import tensorflow  # noqa: F401

            imported = {"import s": time.perf_counter() - start, "import GiB": (vm("VmRSS") - rss) / GIB}
            return {"GFLOP/s": matmul_rate(), **imported}
        if args.worker == "data":
            return data_worker(args, args.scales[0])
        return model_worker(args, args.scales[0], args.models[0])
    except Exception as exc:  # noqa: BLE001 - any failure is a row of the table (crashes: see run)
        return {"status": f"error: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"}


def run(args, kind: str, scale: str = "S1", model: str = "popularity") -> dict:
    """One worker subprocess; its JSON line, or what became of it."""
    cmd = [sys.executable, __file__, "--worker", kind, "--scales", scale, "--models", model, "--epochs",
           str(args.epochs), "--seed", str(args.seed), "--cache-dir", str(args.cache_dir),
           *(["--top-users", str(args.top_users)] if args.top_users else [])]
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ}
    try:
        proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {args.timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        return {"status": f"killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")}
    return {"status": f"crashed (exit code {proc.returncode})"}


# --- report ---------------------------------------------------------------------------------------
COLUMNS = {"fit s": ".1f", "s/epoch": ".2f", "GFLOP/s": ".1f", "% of matmul": ".0f", "peak RSS GiB": ".2f",
           "above data GiB": ".2f", "top-100 s": ".1f", "index s": ".2f", "index": "", "save s": ".2f",
           "load s": ".2f", "MiB": ".1f", "NDCG@100": ".4f", "Recall@20": ".4f", "overlap@10": ".3f", "index @100": "", "overlap@100": ".3f",
           "index users/s @10": ".0f", "model users/s @10": ".0f", "status": ""}


def table(rows: dict, rate: float) -> pd.DataFrame:
    def cell(row, col):
        value = row["GFLOP/s"] / rate * 100 if col == "% of matmul" and "GFLOP/s" in row else row.get(col)
        return "–" if value is None else format(value, COLUMNS[col]) if COLUMNS[col] else str(value)

    return pd.DataFrame({name: {col: cell(row, col) for col in COLUMNS} for name, row in rows.items()}).T.rename_axis("model")


def read_report(text: str) -> dict:
    """The figures of a markdown report this script wrote (for runs whose .json is gone): per scale, the
    training interactions and each model's numeric cells."""
    results, info, scale, header = {}, {}, None, None
    for line in text.splitlines():
        if line.startswith("### "):
            scale, header = line.split()[1].rstrip(":"), None
            results[scale], info[scale] = {}, {}
        elif scale and "; training: " in line:
            info[scale]["interactions"] = int(line.split("; training: ")[1].split(" × ")[2].split(";")[0].replace(",", ""))
        elif scale and line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
                continue
            row = {}
            for col, cell in zip(header[1:], cells[1:]):
                try:
                    row[col] = float(cell)
                except ValueError:
                    pass
            results[scale][cells[0]] = row
    return {"info": info, "results": results}


def plot(results: dict, info: dict, path: Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    models = dict.fromkeys(name for rows in results.values() for name in rows)
    for name in models:
        points = [(info[s]["interactions"], rows[name]) for s, rows in results.items()
                  if "fit s" in rows.get(name, {}) and "interactions" in info[s]]
        # seconds per epoch (runs at different scales may train different numbers of epochs); the
        # whole fit for the closed forms (popularity, EASE)
        seconds = [r.get("s/epoch", r["fit s"]) for _, r in points]
        for ax, ys in zip(axes, (seconds, [r["peak RSS GiB"] for _, r in points])):
            ax.plot([x for x, _ in points], ys, marker="o", label=name)
    for ax, label in zip(axes, ("seconds per epoch (a fit for popularity, EASE)", "peak RSS (GiB)")):
        ax.set(xscale="log", yscale="log", xlabel="training interactions", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    items = ", ".join(f"{scale} {SCALES[scale][1]:,}" for scale in results if scale in SCALES)
    fig.suptitle(textwrap.fill(f"{title or machine()}; items: {items}", 140), fontsize=9)  # long titles wrap
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["S1"], choices=list(SCALES))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the Keras models")
    parser.add_argument("--seed", type=int, default=0, help="of the drawn data and the held-out users")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per worker")
    parser.add_argument("--cache-dir", default="~/.cache/aerec-bench", help="Parquet files of the drawn scales")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this markdown file")
    parser.add_argument("--plot", type=Path, default=None, help="log-log plot of fit time and memory (PNG)")
    parser.add_argument("--plot-from", nargs="+", type=Path, default=None,
                        help="only draw --plot from the .json files earlier runs wrote beside their --out "
                             "(or from their markdown reports)")
    parser.add_argument("--top-users", type=int, default=None,
                        help="time the top-100 of only the first N training users and scale it to all (S3, S4)")
    parser.add_argument("--worker", choices=["matmul", "data", "model"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plot_from:  # one picture from runs made at different times (e.g. one scale per run)
        results, info = {}, {}
        for path in args.plot_from:
            saved = json.loads(path.read_text()) if path.suffix == ".json" else read_report(path.read_text())
            for scale, rows in saved["results"].items():  # runs of other models at the same scale add rows
                results.setdefault(scale, {}).update(rows)
                info.setdefault(scale, {}).update(saved["info"].get(scale, {}))
        plot(results, info, args.plot or Path("scale_bench.png"),
             title="from " + ", ".join(path.name for path in args.plot_from) + " (machines and epochs as in each report)")
        return ""
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return ""

    started = time.perf_counter()
    command = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *(sys.argv[1:] if argv is None else argv)])
    print(f"{command}\n{machine()}", flush=True)
    first = run(args, "matmul")
    rates = [first.get("GFLOP/s", float("nan"))]
    print(f"tf.matmul float32 2048³: {rates[0]:.1f} GFLOP/s", flush=True)
    results, info = {}, {}
    for scale in args.scales:
        print(f"[{scale}] data {SCALES[scale]}", flush=True)
        info[scale], results[scale] = run(args, "data", scale), {}
        for name in args.models if "interactions" in info[scale] else []:  # no data, no models
            print(f"[{scale}] {name}", flush=True)
            results[scale][name] = run(args, "model", scale, name)
            print(f"[{scale}] {name}: {json.dumps(results[scale][name])}", flush=True)
    rates.append(run(args, "matmul").get("GFLOP/s", float("nan")))

    lines = [f"Command: `{command}`", "", f"Machine: {machine()}",
             (f"float32 `tf.matmul` 2048³, same run: {rates[0]:.1f} GFLOP/s before the models, {rates[1]:.1f} after "
              f"(% of matmul uses the first); importing TensorFlow: {first.get('import s', float('nan')):.1f} s, "
              f"{first.get('import GiB', float('nan')):.2f} GiB"),
             (f"Keras models: {args.epochs} epochs; ALS: 15 iterations; {HELD_OUT_USERS:,} held-out users; "
              f"whole run {(time.perf_counter() - started) / 60:.1f} min"),
             *([f"top-100 s: the first {args.top_users:,} training users timed, scaled to all of them"]
               if args.top_users else []), ""]
    for scale in args.scales:
        d, (u, i, n) = info[scale], SCALES[scale]
        lines.append(f"### {scale}: {u:,} users × {i:,} items × {n:,} drawn")
        if "interactions" in d:
            drawn = f"drawn in {d['drawn s']:.0f} s" if d["drawn s"] > 1 else "cached"
            lines.append(f"{d['rows']:,} distinct interactions ({drawn}, {d['MiB']:.0f} MiB Parquet); training: {d['users']:,} "
                         f"users × {d['items']:,} items × {d['interactions']:,}; {d['held out']:,} held-out users")
        else:
            lines.append(f"data: {d.get('status')}; no model was run")
        lines += ["", markdown(table(results[scale], rates[0])), ""]
    text = emit("\n".join(lines), args.out)
    if args.out:  # the raw figures, for --plot-from
        args.out.with_suffix(".json").write_text(json.dumps({"info": info, "results": results}, indent=1))
    if args.plot:
        plot(results, info, args.plot)
        print(f"plot: {args.plot}")
    return text


if __name__ == "__main__":
    main()
