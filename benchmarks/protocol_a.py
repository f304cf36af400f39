"""Protocol A (implicit top-N on MovieLens-100K): A1 weak and A2 strong generalisation tables.

Every model is fitted once per seed on the fixed split files; hyperparameters in a model's grid
are chosen on that seed's validation data (NDCG@100) with ``aerec.tune``, then the model with the
chosen values is refitted on train and scored on test. Models that train iteratively also get the
validation data for early stopping.

    AEREC_DATA_HOME=../shared/data python benchmarks/protocol_a.py [--models EASE Popularity] [--seeds 0 1 2 3 4]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aerec  # noqa: E402
from _common import emit, machine, markdown  # noqa: E402
from aerec.evaluate import evaluate_strong, evaluate_weak, load_protocol_a, summarize
from aerec.metrics import PROTOCOL_A_METRICS  # noqa: E402

#: name -> (unfitted estimator for a seed, grid tuned on validation data)
MODELS = {
    "Popularity": (lambda seed: aerec.Popularity(seed=seed), {}),
    "EASE": (lambda seed: aerec.EASE(seed=seed), {"l2": [50.0, 100.0, 200.0, 300.0, 500.0, 800.0, 1200.0]}),
    # the neural models run with their documented defaults and stop early on validation NDCG@100
    "MultVAE": (lambda seed: aerec.MultVAE(seed=seed), {}),
    "MultDAE": (lambda seed: aerec.MultDAE(seed=seed), {}),
    "CDAE": (lambda seed: aerec.CDAE(seed=seed), {}),
    "RecVAE": (lambda seed: aerec.RecVAE(seed=seed), {}),
    "ELSA": (lambda seed: aerec.ELSA(seed=seed), {}),
}


def run(kind: str, name: str, seeds) -> tuple[pd.DataFrame, list]:
    make, grid = MODELS[name]
    rows, chosen = [], []
    for seed in seeds:
        split = load_protocol_a(kind, seed)
        valid = split["valid"] if kind == "weak" else (split["valid_fold_in"], split["valid_held_out"])
        model = make(seed)
        if grid:
            best, _ = aerec.tune(model, grid, split["train"], valid)
            model.set_params(**best)
            chosen.append(best)
        start = time.perf_counter()
        model.fit(split["train"], valid=valid)
        seconds = time.perf_counter() - start
        if kind == "weak":
            per_user = evaluate_weak(model, split["test"], exclude=split["valid"])
        else:
            per_user = evaluate_strong(model, split["test_fold_in"], split["test_held_out"])
        rows.append({"seed": seed, **per_user.mean().to_dict(), "fit_seconds": seconds})
    return pd.DataFrame(rows), chosen


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", aerec.exceptions.UnknownIdsWarning)  # items unseen in train: expected here

    lines = [f"Machine: {machine()}", f"Seeds: {args.seeds}", ""]
    for kind, title in (("weak", "A1 weak generalisation"), ("strong", "A2 strong generalisation")):
        table, notes = {}, []
        for name in args.models:
            results, chosen = run(kind, name, args.seeds)
            table[name] = {**summarize(results).to_dict(), "fit s": f"{results['fit_seconds'].mean():.2f}"}
            if chosen:
                notes.append(f"{name}: chosen on validation per seed: {[{k: float(v) for k, v in c.items()} for c in chosen]}")
        frame = pd.DataFrame(table).T.rename_axis("model")[list(PROTOCOL_A_METRICS) + ["fit s"]]
        lines += [f"### {title} (mean ± std over {len(args.seeds)} seeds)", "", markdown(frame), "", *notes, ""]
    text = "\n".join(lines)
    return emit(text, args.out)


if __name__ == "__main__":
    main()
