"""Sparse long-tail sets (issue #24): every aerec recommender beside item-kNN, EASE and popularity.

Two sets anyone can rebuild, both scored with protocol A1's metrics (weak generalisation: rank
every item, the user's train and validation items excluded):

- **ML-100K 20%**: protocol A1's split files (seed s); each user's ``train.tsv`` positives thinned to
  20% (rounded, at least one), drawn with ``default_rng(s)``; ``valid.tsv`` and ``test.tsv``
  unchanged. About 11 training positives per user instead of 55.
- **Games-like**: ``aerec.datasets.synthetic_interactions(30_000, 25_000, 240_000, seed=s)`` (Zipf
  items, log-normal users, about 8 interactions per user); users with at least 3 interactions;
  per user 70/10/20% train/valid/test at random with ``default_rng(s)`` (at least one each, the
  rule of protocol A's ``make_splits.py``).

Whatever a model tunes or stops early on is the validation part: EASE's λ and item-kNN's
neighbours and shrinkage are chosen on it (NDCG@100, ``aerec.tune``); the Keras models run with
their defaults and stop early on it (``--epochs MODEL=N`` caps a model's epochs where its defaults would run for
hours; the notes say so). *fit s* is the final fit (with its validation); *valid %* the
time early stopping's validation took, as a share of the training epochs' time
(``history_["valid_seconds"]`` over ``history_["train_seconds"]``).

    AEREC_DATA_HOME=../shared/data python benchmarks/sparse_bench.py [--sets ml100k-20 games] \\
        [--models ...] [--seeds 0] --out benchmarks/results/sparse_bench.md
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
from aerec.evaluate import evaluate_weak, load_protocol_a  # noqa: E402
from aerec.metrics import PROTOCOL_A_METRICS  # noqa: E402

#: name -> (unfitted estimator for a seed, grid chosen on validation NDCG@100)
MODELS = {
    "Popularity": (lambda seed: aerec.Popularity(seed=seed), {}),
    "ItemKNN": (lambda seed: aerec.ItemKNN(seed=seed),
                {"neighbours": [50, 200, 1000, 5000], "shrink": [10.0, 50.0, 200.0]}),
    "EASE": (lambda seed: aerec.EASE(seed=seed), {"l2": [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0]}),
    "ELSA": (lambda seed: aerec.ELSA(seed=seed), {}),
    "MultDAE": (lambda seed: aerec.MultDAE(seed=seed), {}),
    "MultVAE": (lambda seed: aerec.MultVAE(seed=seed), {}),
    "RecVAE": (lambda seed: aerec.RecVAE(seed=seed), {}),
    "CDAE": (lambda seed: aerec.CDAE(seed=seed), {}),
}


def per_user_split(frame: pd.DataFrame, fractions, seed: int) -> list[pd.DataFrame]:
    """``make_splits.py``'s rule, vectorised: per user a random order, the last parts ``round(f·n)`` (at least 1)."""
    rng = np.random.default_rng(seed)
    order = frame.assign(_key=rng.random(len(frame))).sort_values(["user", "_key"])
    n = order.groupby("user")["user"].transform("size").to_numpy()
    position = order.groupby("user").cumcount().to_numpy()
    sizes = [np.maximum(1, np.round(f * n)) for f in fractions[1:]]
    bounds = [n - sum(sizes)]
    for s in sizes:
        bounds.append(bounds[-1] + s)
    part = np.zeros(len(order), dtype=int)
    for b in bounds[:-1]:
        part += position >= b
    return [order[part == p].drop(columns="_key") for p in range(len(fractions))]


def thinned(train: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Per user, ``share`` of their rows (rounded, at least one), drawn with ``default_rng(seed)``."""
    draw = pd.Series(np.random.default_rng(seed).random(len(train)), index=train.index)
    rank = draw.groupby(train["user"]).rank(method="first")
    keep = np.maximum(1, np.round(share * train.groupby("user")["user"].transform("size")))
    return train[rank <= keep]


def load_set(name: str, seed: int) -> dict[str, pd.DataFrame]:
    if name == "ml100k-20":
        split = load_protocol_a("weak", seed)
        return {"train": thinned(split["train"], 0.2, seed), "valid": split["valid"], "test": split["test"]}
    frame = aerec.datasets.synthetic_interactions(30_000, 25_000, 240_000, seed=seed)
    counts = frame.groupby("user")["user"].transform("size")
    train, valid, test = per_user_split(frame[counts >= 3], [0.7, 0.1, 0.2], seed)
    return {"train": train, "valid": valid, "test": test}


#: per set, grids that replace MODELS' (EASE inverts a 25,000² matrix per value on games: 6-10 minutes
#: each on the 2-core machine, so it gets the value chosen on ml100k-20)
SET_GRIDS = {"games": {"EASE": {"l2": [3000.0]}}}


def run(set_name: str, name: str, seed: int, data: dict, epochs: int | None = None) -> dict:
    make, grid = MODELS[name]
    grid = SET_GRIDS.get(set_name, {}).get(name, grid)
    model, chosen = make(seed), None
    if epochs is not None:
        model.set_params(epochs=epochs)
    if grid and all(len(values) == 1 for values in grid.values()):
        model.set_params(**{name: values[0] for name, values in grid.items()})  # nothing to choose
    elif grid:
        chosen, _ = aerec.tune(model, grid, data["train"], data["valid"])
        model.set_params(**chosen)
    start = time.perf_counter()
    model.fit(data["train"], valid=data["valid"])
    seconds = time.perf_counter() - start
    history = getattr(model, "history_", None) or {}
    trained, validated = sum(history.get("train_seconds", [])), sum(history.get("valid_seconds", []))
    per_user = evaluate_weak(model, data["test"], exclude=data["valid"])
    row = {**per_user.mean().to_dict(), "fit s": seconds,
           "valid %": 100 * validated / trained if trained else np.nan,
           "epochs": len(history["loss"]) if "loss" in history else np.nan}
    print(f"  [{set_name} seed {seed}] {name}: NDCG@100 {row['ndcg@100']:.4f} HR@10 {row['hr@10']:.4f} "
          f"({seconds:.0f} s){'' if chosen is None else f' chosen {chosen}'}", file=sys.stderr, flush=True)
    return {"row": row, "chosen": chosen, "model": model}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["ml100k-20", "games"], choices=["ml100k-20", "games"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", nargs="+", default=[], metavar="MODEL=N",
                        help="most epochs of these models (their default otherwise), e.g. RecVAE=20")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    caps = {name: int(n) for name, n in (pair.split("=") for pair in args.epochs)}
    warnings.simplefilter("ignore", aerec.exceptions.UnknownIdsWarning)  # test items unseen in train: expected

    lines = [f"Machine: {machine()}", "",
             f"Command: `python benchmarks/sparse_bench.py --sets {' '.join(args.sets)} --models "
             f"{' '.join(args.models)} --seeds {' '.join(map(str, args.seeds))}"
             f"{' --epochs ' + ' '.join(args.epochs) if args.epochs else ''}`", ""]
    for set_name in args.sets:
        datas = {seed: load_set(set_name, seed) for seed in args.seeds}
        d = datas[args.seeds[0]]
        shape = (f"{d['train']['user'].nunique():,} users, {pd.concat([d['train'], d['valid'], d['test']])['item'].nunique():,} "
                 f"items, {len(d['train']):,} training rows ({len(d['train']) / d['train']['user'].nunique():.1f} per user), "
                 f"{len(d['test']):,} test rows")
        table, notes = {}, []
        for name in args.models:
            results = [run(set_name, name, seed, datas[seed], caps.get(name)) for seed in args.seeds]
            frame = pd.DataFrame([r["row"] for r in results])
            row = {m: (f"{frame[m].mean():.4f}" if len(frame) == 1 else f"{frame[m].mean():.4f} ± {frame[m].std(ddof=0):.4f}")
                   for m in PROTOCOL_A_METRICS}
            row.update({"fit s": f"{frame['fit s'].mean():.1f}", "epochs": f"{frame['epochs'].mean():.0f}"
                        if frame["epochs"].notna().any() else "",
                        "valid %": f"{frame['valid %'].mean():.0f}" if frame["valid %"].notna().any() else ""})
            table[name] = row
            chosen = [r["chosen"] for r in results if r["chosen"]]
            if chosen:
                notes.append(f"- {name}: chosen on validation per seed: {chosen}")
            if name in caps:
                notes.append(f"- {name}: at most {caps[name]} epochs (not its default)")
            model = results[0]["model"]
            if "sampled_softmax" in model.get_params():
                negatives = model.network_.sampled_softmax
                notes.append(f"- {name}: sampled_softmax={model.sampled_softmax!r} trained "
                             f"{f'with {negatives:,} sampled negatives' if negatives else 'the full softmax'}")
            section = [f"### {set_name}: {shape}; seeds {args.seeds}", "",
                       markdown(pd.DataFrame(table).T.rename_axis("model")), "", *notes, ""]
            if args.out:  # the rows so far, after every model: a long run cut short keeps what it measured
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text("\n".join(lines + section) + "\n")
        lines += section
    return emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
