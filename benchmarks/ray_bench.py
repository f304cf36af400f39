"""aerec on a local Ray cluster against the same work in process: batch recommendations (rows/s) and
training across workers (s/epoch, validation and test NDCG@100).

``--part batch``: EASE fitted on protocol A1 seed 0's train split (ML-100K positives), the user set every
training user repeated ``--repeat`` times; or (``--users S2``) the scale benchmark's S2 set (138,000 users x
20,000 items x 10M, drawn by ``aerec.datasets.synthetic_interactions``) with a Mult-DAE trained one epoch,
every user once; top-``--k`` each. In process: ``Recommender.recommend_all``
(batches of 1,024 users to a Parquet file; once per repeat). On Ray: ``aerec.distributed.recommend_batch``
(each actor loads the bundle once, then ``top_k`` per batch) to a directory of Parquet files; the time
includes starting the actors and loading the bundle in each, not starting Ray.

``--part train``: Mult-VAE and Mult-DAE with their defaults on A1 seed 0 (early stopping on valid), fitted
in process (``keras.Model.fit``) and by ``aerec.distributed.fit`` on 1 and 2 Ray workers (one CPU each);
s/epoch is the mean of the epochs' training time (checks excluded), wall the whole call (for Ray: starting
the actors and TensorFlow in each, preparing the data, returning the bundle).

    PYTHONPATH=. AEREC_DATA_HOME=../shared/data python benchmarks/ray_bench.py --part all --repeat 20
    PYTHONPATH=. python benchmarks/ray_bench.py --part batch --users S2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine  # noqa: E402

SPLITS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "ml100k-implicit" / "weak" / "seed0"


#: the user sets of the batch part: A1 seed 0's training users (repeated), or the scale benchmark's S2 / S3
SCALE_USERS = {"S2": (138_000, 20_000, 10_000_000), "S3": (500_000, 100_000, 20_000_000)}


def batch_model(args):
    """The model and the users to score: EASE on A1 (users repeated ``--repeat`` times), or a Mult-DAE
    trained one epoch on a scale set of ``aerec.datasets.synthetic_interactions`` (every user once: the
    throughput of a deep model's scoring does not depend on how well it was trained)."""
    import aerec

    if args.users == "A1":
        train = pd.read_csv(args.splits / "train.tsv", sep="\t")
        model = aerec.EASE().fit(train)
        return model, list(model.users_.ids) * args.repeat, f"EASE on A1 seed 0 ({len(model.items_)} items)"
    start = time.perf_counter()
    train = aerec.datasets.synthetic_interactions(*SCALE_USERS[args.users], seed=0)
    drawn = time.perf_counter() - start
    model = aerec.MultDAE(epochs=1, patience=None, seed=0, verbose=0).fit(train)
    args.repeat = 1
    return model, list(model.users_.ids), (f"Mult-DAE (1 epoch) on {args.users} ({len(model.users_):,} users x "
                                           f"{len(model.items_):,} items x {len(train):,}, drawn in {drawn:.0f} s)")


def batch_table(args) -> str:
    import ray

    from aerec.distributed import recommend_batch

    model, users, what = batch_model(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model.save(tmp / "bundle")
        pd.DataFrame({"user": users}).to_parquet(tmp / "users.parquet")
        start = time.perf_counter()
        # recommend_all writes each user once: the repeated set is written as args.repeat files
        written = sum(model.recommend_all(tmp / f"inprocess{r}.parquet", k=args.k, progress=False)
                      for r in range(args.repeat))
        rows.append(("in process (recommend_all)", written, time.perf_counter() - start))
        ray.data.DataContext.get_current().enable_progress_bars = False
        for workers in (1, 2):
            start = time.perf_counter()
            out = recommend_batch(tmp / "bundle", tmp / "users.parquet", tmp / f"ray{workers}", k=args.k,
                                  num_workers=workers)
            seconds = time.perf_counter() - start
            rows.append((f"Ray Data, {workers} actor(s)", len(pd.read_parquet(out)), seconds))
    base = rows[0][1] / rows[0][2]
    lines = [f"{len(users):,} users x top-{args.k}, {what}", "",
             "| run | rows | seconds | rows/s | vs in process |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} | {n / seconds / base:.2f}x |"
              for name, n, seconds in rows]
    return "\n".join(lines)


def train_table(args) -> str:
    import aerec
    import aerec.distributed
    from aerec.evaluate import evaluate_weak

    train = pd.read_csv(args.splits / "train.tsv", sep="\t")
    valid = pd.read_csv(args.splits / "valid.tsv", sep="\t")
    test = pd.read_csv(args.splits / "test.tsv", sep="\t")
    lines = ["| model | run | epochs (best) | s/epoch | vs in process | wall s | valid NDCG@100 | test NDCG@100 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in args.models:
        runs = [("in process", None)] + [(f"Ray, {n} worker(s)", n) for n in args.workers]
        base = None
        for label, workers in runs:
            model = getattr(aerec, name)(seed=args.seed)
            start = time.perf_counter()
            if workers is None:
                model.fit(train, valid=valid)
            else:
                aerec.distributed.fit(model, train, valid=valid, num_workers=workers)
            wall = time.perf_counter() - start
            per_epoch = float(np.mean(model.history_["train_seconds"]))
            base = base or per_epoch
            best = model.best_epoch_
            test_ndcg = evaluate_weak(model, test, exclude=valid)["ndcg@100"].mean()
            lines.append(f"| {name} | {label} | {len(model.history_['loss'])} ({best + 1}) | {per_epoch:.3f} | "
                         f"{per_epoch / base:.2f}x | {wall:.1f} | {model.history_['val_ndcg@100'][best]:.4f} | "
                         f"{test_ndcg:.4f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["batch", "train", "all"], default="all")
    parser.add_argument("--users", choices=["A1", *SCALE_USERS], default="A1", help="the batch part's user set")
    parser.add_argument("--repeat", type=int, default=20, help="A1's users repeated this many times")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--models", nargs="+", default=["MultVAE", "MultDAE"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", type=Path, default=SPLITS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    parts = [f"Machine: {machine()} (shared with other jobs)", ""]
    try:
        if args.part in ("batch", "all"):
            parts += ["## Batch recommendations", "", batch_table(args), ""]
        if args.part in ("train", "all"):
            parts += ["## Training across workers (A1 seed 0, defaults, early stopping on valid)", "",
                      train_table(args), ""]
    finally:
        ray.shutdown()
    emit("\n".join(parts), args.out)


if __name__ == "__main__":
    main()
