"""Protocol D, scoring: top-100 for all users of A1 seed 0, by the model vs through the exact FAISS index.

For each recommender: seconds to rank every item for every training user (top-100, seen items
excluded) with the model's own scores and through its exact inner-product index over
``[W_i, b_i]`` queried with ``[h_u, 1]``, and the share of users whose two lists are identical
(same items in the same order; a swap of two items whose scores tie within 1e-5 still counts as
identical).

    AEREC_DATA_HOME=../shared/data python benchmarks/scoring_bench.py [--models EASE Popularity]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aerec  # noqa: E402
from _common import emit, machine, markdown  # noqa: E402
from aerec.base import registered  # noqa: E402


def identical(a: pd.DataFrame, b: pd.DataFrame, tol: float = 1e-5) -> np.ndarray:
    """Per user: same items in the same order, up to swaps inside groups of tied scores."""
    out = []
    for (_, ga), (_, gb) in zip(a.groupby("user", sort=False), b.groupby("user", sort=False)):
        if ga["item"].tolist() == gb["item"].tolist():
            out.append(True)
            continue
        scores = ga["score"].to_numpy()
        group = np.concatenate([[0], np.cumsum(np.diff(scores) < -tol)])
        same = len(ga) == len(gb) and np.allclose(scores, gb["score"].to_numpy(), atol=tol) and all(
            set(ga["item"].to_numpy()[group == g]) == set(gb["item"].to_numpy()[group == g]) for g in np.unique(group)[:-1])
        out.append(bool(same))
    return np.array(out)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["Popularity", "EASE"])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", aerec.exceptions.UnknownIdsWarning)
    split = aerec.evaluate.load_protocol_a("weak", 0)
    rows = []
    for name in args.models:
        model = registered(name)().fit(split["train"], valid=split["valid"])
        users = model.users_.ids
        timings = {}
        results = {}
        for via in ("model", "index"):
            best = np.inf
            for _ in range(args.repeat):
                start = time.perf_counter()
                results[via] = model.recommend(users, k=args.k, via=via)
                best = min(best, time.perf_counter() - start)
            timings[via] = best
        same = identical(results["model"], results["index"])
        rows.append({"model": name, "users": len(users), "items": len(model.items_),
                     "code dim": model.index_.dim_, "model s": round(timings["model"], 3),
                     "exact index s": round(timings["index"], 3),
                     "index / model time": round(timings["index"] / timings["model"], 2),
                     "identical lists": f"{100 * same.mean():.1f}%"})
    text = "\n".join([f"Machine: {machine()}", f"Top-{args.k} for every user of protocol A1 seed 0, seen items excluded; "
                      f"best of {args.repeat} runs", "", markdown(pd.DataFrame(rows), index=False)])
    return emit(text, args.out)


if __name__ == "__main__":
    main()
