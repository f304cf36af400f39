"""Protocol B (explicit rating prediction on MovieLens-100K): RMSE and MAE on u1 and the mean over u1..u5.

Every model is fitted on ``u{k}.base`` and predicts every pair of ``u{k}.test`` (clipped to
[1, 5]; users or items unseen in base get a fallback and count in the figures). Whatever a model
tunes or stops early on is a validation part carved from base only:

- global mean;
- user/item biases ``mu + b_u + b_i`` with L2-regularised biases fitted by a few alternating
  least-squares sweeps; the regularisation is chosen per fold on 5% of base;
- Surprise's SVD (Koren's biased MF; benchmark-only extra, ``pip install scikit-surprise``): with
  its defaults, and with a small grid chosen per fold on 5% of base;
- aerec's AutoRec variants (early stopping on 5% of base, drawn with the seed).

Sparse and skewed variants (``--densities``, ``--skewed``), which anyone can rebuild: from each
``u{k}.base`` keep, per user, a share of their ratings (at least one), drawn with ``default_rng(k)``,
and evaluate on the unchanged ``u{k}.test``; the skewed variant maps every rating (base and test)
as a review site sees them, most mass on 5: 1 -> 1, 2 -> 3, 3 -> 4, 4 -> 5, 5 -> 5.

    AEREC_DATA_HOME=../shared/data python benchmarks/protocol_b.py [--models ...] [--folds 1 2 3 4 5]
        [--densities 1.0 0.5 0.25 0.1] [--skewed] [--out benchmarks/results/protocol_b.md]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aerec  # noqa: E402
from _common import emit, machine, markdown  # noqa: E402
from aerec.metrics import mae, rmse  # noqa: E402
from aerec import AutoRec  # noqa: E402

LOW, HIGH = 1.0, 5.0

#: AutoRec variants: name -> parameters (all with seed=0 unless they say otherwise)
#: how a review site's ratings look: most of the mass on 5 (the --skewed variant)
SKEW = {1: 1, 2: 3, 3: 4, 4: 5, 5: 5}

AUTOREC = {
    "AutoRec item (I-AutoRec)": {"kind": "item"},
    "AutoRec item, no baseline (the paper's)": {"kind": "item", "baseline": False},
    "AutoRec user (U-AutoRec)": {"kind": "user"},
    "AutoRec item, dropout 0.2": {"kind": "item", "dropout": 0.2},
    "AutoRec item, local kernel": {"kind": "item", "kernel_dim": 5},
    "AutoRec item, GLocal-K (local + global kernel)": {"kind": "item", "kernel_dim": 5, "global_kernel_size": 3},
    "AutoRec item + user (kind='both')": {"kind": "both"},
    "AutoRec item + user, refit on all of base": {"kind": "both", "refit": True},
}


def thinned(base: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Per user, ``share`` of their ratings (rounded, at least one), drawn with ``default_rng(seed)``."""
    if share >= 1.0:
        return base
    draw = pd.Series(np.random.default_rng(seed).random(len(base)), index=base.index)
    rank = draw.groupby(base["user"]).rank(method="first")
    keep = np.maximum(1, np.round(share * base.groupby("user")["user"].transform("size")))
    return base[rank <= keep]


def skewed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(rating=frame["rating"].map(SKEW).astype(frame["rating"].dtype))


def validation_split(base: pd.DataFrame, seed: int = 0, share: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    held = np.random.default_rng(seed).random(len(base)) < share
    return base[~held], base[held]


# --- baselines ---------------------------------------------------------------------------


class GlobalMean:
    def fit(self, base):
        self.mean_ = float(base["rating"].mean())
        return self

    def predict(self, pairs):
        return np.full(len(pairs), self.mean_)


class Biases:
    """``mu + b_u + b_i``, biases L2-regularised (``reg``) and fitted by ``sweeps`` ALS sweeps."""

    def __init__(self, reg: float = 5.0, sweeps: int = 10):
        self.reg, self.sweeps = reg, sweeps

    def fit(self, base):
        users, u = np.unique(base["user"].to_numpy(), return_inverse=True)
        items, i = np.unique(base["item"].to_numpy(), return_inverse=True)
        r = base["rating"].to_numpy(dtype=float)
        mu, bu, bi = r.mean(), np.zeros(len(users)), np.zeros(len(items))
        for _ in range(self.sweeps):
            bi = np.bincount(i, r - mu - bu[u], len(items)) / (self.reg + np.bincount(i, minlength=len(items)))
            bu = np.bincount(u, r - mu - bi[i], len(users)) / (self.reg + np.bincount(u, minlength=len(users)))
        self.mu_ = mu
        self.bu_ = pd.Series(bu, index=users)
        self.bi_ = pd.Series(bi, index=items)
        return self

    def predict(self, pairs):
        bu = pairs["user"].map(self.bu_).fillna(0.0).to_numpy()
        bi = pairs["item"].map(self.bi_).fillna(0.0).to_numpy()
        return self.mu_ + bu + bi


class TunedBiases:
    """:class:`Biases` with ``reg`` chosen on a validation part of base."""

    grid = (1.0, 2.0, 5.0, 10.0, 15.0, 25.0)

    def fit(self, base):
        train, valid = validation_split(base)
        scores = {reg: rmse(valid["rating"], np.clip(Biases(reg).fit(train).predict(valid), LOW, HIGH))
                  for reg in self.grid}
        self.reg_ = min(scores, key=scores.get)
        self.model_ = Biases(self.reg_).fit(base)
        return self

    def predict(self, pairs):
        return self.model_.predict(pairs)

    def note(self):
        return f"reg={self.reg_:g}"


class SurpriseSVD:
    """Surprise's SVD, with its defaults or with a grid chosen on a validation part of base."""

    grid = {"n_epochs": [20, 40], "lr_all": [0.005, 0.01], "reg_all": [0.02, 0.05, 0.1]}

    def __init__(self, tuned: bool):
        self.tuned = tuned

    @staticmethod
    def _fit(frame, **params):
        from surprise import SVD, Dataset, Reader

        data = Dataset.load_from_df(frame[["user", "item", "rating"]], Reader(rating_scale=(LOW, HIGH)))
        return SVD(random_state=0, **params).fit(data.build_full_trainset())

    @staticmethod
    def _predict(algo, pairs):
        # the raw ids of the trainset are the DataFrame's values; unknown ids get Surprise's own fallback
        # (the global mean plus whichever bias is known)
        return np.array([algo.predict(u, i, clip=False).est for u, i in zip(pairs["user"], pairs["item"])])

    def fit(self, base):
        self.params_ = {}
        if self.tuned:
            train, valid = validation_split(base)
            names = list(self.grid)
            scores = {}
            for values in itertools.product(*(self.grid[n] for n in names)):
                params = dict(zip(names, values))
                algo = self._fit(train, **params)
                scores[values] = rmse(valid["rating"], np.clip(self._predict(algo, valid), LOW, HIGH))
            self.params_ = dict(zip(names, min(scores, key=scores.get)))
        self.algo_ = self._fit(base, **self.params_)
        return self

    def predict(self, pairs):
        return self._predict(self.algo_, pairs)

    def note(self):
        return ", ".join(f"{k}={v:g}" for k, v in self.params_.items()) or "defaults"


class AutoRecRunner:
    def __init__(self, params: dict):
        self.params = params

    def fit(self, base):
        self.model_ = AutoRec(seed=0, rating_range=(LOW, HIGH), **self.params).fit(base)
        return self

    def predict(self, pairs):
        return self.model_.predict(pairs[["user", "item"]])["rating"].to_numpy()

    def note(self):
        m = self.model_
        epochs = {k: h["stage_epochs"] for k, h in m.history_.items()}
        valid = ", ".join(f"{k} {v:.4f}" for k, v in m.validation_rmse_.items())
        extra = f", item weight {m.ensemble_weight_:g}" if m.kind == "both" else ""
        if any("global_kernel_used" in h for h in m.history_.values()):
            extra += ", global kernel not kept (no gain on validation)"
        if m.baseline:
            extra += f", bias penalty {m.bias_l2_:g}, residual weight {m.residual_weight_:g}"
        return f"validation RMSE {valid}; epochs {epochs}{extra}"


def surprise_available() -> bool:
    try:
        import surprise  # noqa: F401
    except ImportError:
        return False
    return True


def models() -> dict:
    out = {"global mean": GlobalMean, "user/item biases (ALS)": TunedBiases}
    if surprise_available():
        out["Surprise SVD (defaults)"] = lambda: SurpriseSVD(tuned=False)
        out["Surprise SVD (tuned on validation)"] = lambda: SurpriseSVD(tuned=True)
    out.update({name: (lambda p=params: AutoRecRunner(p)) for name, params in AUTOREC.items()})
    return out


def run_variant(names: list[str], available: dict, folds: dict, label: str) -> tuple[pd.DataFrame, list[str]]:
    """One table: every model on every fold of one variant of the data."""
    rows, notes = {}, []
    for name in names:
        per_fold = {}
        for k, (base, test) in folds.items():
            start = time.perf_counter()
            model = available[name]().fit(base)
            pred = np.clip(model.predict(test), LOW, HIGH)
            per_fold[k] = {"rmse": rmse(test["rating"], pred), "mae": mae(test["rating"], pred),
                           "seconds": time.perf_counter() - start}
            if hasattr(model, "note"):
                notes.append(f"- {label}, {name}, u{k}: {model.note()}")
            print(f"  [{label}] {name} u{k}: RMSE {per_fold[k]['rmse']:.4f} MAE {per_fold[k]['mae']:.4f} "
                  f"({per_fold[k]['seconds']:.0f} s)", file=sys.stderr, flush=True)
        frame = pd.DataFrame(per_fold).T
        row = {}
        if 1 in per_fold:
            row.update({"u1 RMSE": f"{per_fold[1]['rmse']:.4f}", "u1 MAE": f"{per_fold[1]['mae']:.4f}"})
        row.update({
            f"mean RMSE (u{','.join(map(str, folds))})": f"{frame['rmse'].mean():.4f} ± {frame['rmse'].std(ddof=0):.4f}",
            "mean MAE": f"{frame['mae'].mean():.4f} ± {frame['mae'].std(ddof=0):.4f}",
            "fit+predict s": f"{frame['seconds'].mean():.1f}",
        })
        rows[name] = row
    return pd.DataFrame(rows).T.rename_axis("model"), notes


def main(argv=None) -> str:
    available = models()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(available), choices=list(available), metavar="MODEL")
    parser.add_argument("--folds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--densities", nargs="+", type=float, default=[1.0],
                        help="shares of each user's base ratings to keep (1.0: the protocol itself)")
    parser.add_argument("--skewed", action="store_true", help="also run the skewed variant (full density)")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", aerec.exceptions.UnknownIdsWarning)  # unseen test ids: expected, counted

    ml = aerec.datasets.movielens_100k()
    folds = {k: ml.fold(k) for k in args.folds}
    variants = [(f"density {d:g}" if d < 1 else "full density",
                 {k: (thinned(base, d, k), test) for k, (base, test) in folds.items()}) for d in args.densities]
    if args.skewed:
        variants.append(("skewed ratings", {k: (skewed(base), skewed(test)) for k, (base, test) in folds.items()}))
    lines = [f"Machine: {machine()}", "", f"Command: `python benchmarks/protocol_b.py {' '.join(argv or sys.argv[1:])}`", ""]
    all_notes = []
    for label, data in variants:
        n_ratings = int(np.mean([len(base) for base, _ in data.values()]))
        table, notes = run_variant(args.models, available, data, label)
        all_notes += notes
        lines += [f"### B, {label}: rating prediction on MovieLens-100K folds ({n_ratings:,} base ratings per fold on "
                  f"average; predictions clipped to [1, 5]; lower is better)", "", markdown(table), ""]
    if not surprise_available():
        lines += ["Surprise is not installed (`pip install scikit-surprise`): its SVD is not in this run.", ""]
    lines += ["Choices made on validation data (5% of base) and epochs trained:", "", *all_notes, ""]
    return emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
