"""Batch recommendations in process vs on a local Ray cluster (Ray Data, 1 and 2 actors): rows per second.

EASE fitted on protocol A1 seed 0's train split (ML-100K positives); the user set is every training
user repeated ``--repeat`` times, top-``--k`` each. In process: ``Recommender.recommend_all`` (batches
of 1,024 users to a Parquet file; once per repeat). On Ray: ``aerec.distributed.recommend_batch`` (each actor loads
the bundle once, then ``top_k`` per batch) to a directory of Parquet files; the time includes
starting the actors and loading the bundle in each, not starting Ray.

    PYTHONPATH=. AEREC_DATA_HOME=../shared/data python benchmarks/ray_bench.py --repeat 20
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

SPLITS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "ml100k-implicit" / "weak" / "seed0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--splits", type=Path, default=SPLITS)
    args = parser.parse_args()

    import ray

    import aerec
    from aerec.distributed import recommend_batch

    train = pd.read_csv(args.splits / "train.tsv", sep="\t")
    model = aerec.EASE().fit(train)
    users = list(model.users_.ids) * args.repeat
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
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            for workers in (1, 2):
                start = time.perf_counter()
                out = recommend_batch(tmp / "bundle", tmp / "users.parquet", tmp / f"ray{workers}", k=args.k,
                                      num_workers=workers)
                seconds = time.perf_counter() - start
                rows.append((f"Ray Data, {workers} actor(s)", len(pd.read_parquet(out)), seconds))
        finally:
            ray.shutdown()
    base = rows[0][1] / rows[0][2]
    print(f"\n{len(users):,} users x top-{args.k}, EASE on A1 seed 0 ({len(model.items_)} items), 2 cores\n")
    print("| run | rows | seconds | rows/s | vs in process |")
    print("|---|---:|---:|---:|---:|")
    for name, n, seconds in rows:
        print(f"| {name} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} | {n / seconds / base:.2f}x |")


if __name__ == "__main__":
    main()
