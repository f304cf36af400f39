"""Protocol F (tables: missing values and anomalies).

Missing values: on the feature tables of ``load_diabetes``, ``load_wine`` and ``load_breast_cancer``,
for seeds 0..4 hide 20% of the cells completely at random (``numpy.random.default_rng(seed)``),
fit on the table with the holes and report the RMSE over the hidden cells in standardised units
(each column scaled by its mean and standard deviation over the full table), mean ± std over the
seeds; beside each aerec ``TableAutoencoder`` kind: column means, ``KNNImputer()`` and
``IterativeImputer(random_state=seed)``. Every kind runs with its defaults plus ``IMPUTE_SETTINGS``
(an ensemble of 5), and the denoising kind also with its plain defaults (one member). Nothing is tuned
on the hidden cells: the settings were chosen on a development split that hides a further 1/16 of
the *observed* cells (``--dev``), and each model's early stopping watches observed cells of its
own that it keeps out of training.

Anomalies (one-class MNIST, the split of protocol C): for each digit d, train on the database
images (the last 9,000 test images) of digit d only, score the 1,000 query images and report the
AUROC of "not d" against "d", and the mean over digits; beside it: PCA reconstruction error with
the same code size, and ``IsolationForest(random_state=0)`` on pixels.

    AEREC_DATA_HOME=../shared/data python benchmarks/protocol_f.py [--part impute anomaly] [--out benchmarks/results/protocol_f.md]
    python benchmarks/protocol_f.py --part impute --dev --seeds 0 1 2 [--settings '{"members": 5}']   # choosing settings
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aerec  # noqa: E402
from _common import emit, machine, markdown  # noqa: E402
from aerec.metrics import auroc  # noqa: E402
from aerec import TableAutoencoder  # noqa: E402

KINDS = ("undercomplete", "sparse", "contractive", "denoising", "variational")
TABLES = ("diabetes", "wine", "breast_cancer")
#: one-class MNIST: the code size shared by the autoencoders and PCA, and the autoencoders' settings
MNIST_CODE = 32
MNIST_SETTINGS = {"hidden_dim": (256,), "code_dim": MNIST_CODE, "activation": "relu", "standardize": False,
                  "batch_size": 64, "epochs": 200, "patience": 20}
#: imputation: added to every kind's defaults (chosen on the development split, see the module's notes)
IMPUTE_SETTINGS = {"members": 5}


def load_table(name: str) -> pd.DataFrame:
    import sklearn.datasets

    data = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    return data.data.astype("float64")


def with_holes(table: pd.DataFrame, seed: int, share: float = 0.2) -> tuple[pd.DataFrame, np.ndarray]:
    hidden = np.random.default_rng(seed).random(table.shape) < share
    return table.mask(hidden), hidden


def imputers(seed: int, settings: dict | None = None, kinds=KINDS) -> dict:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    def sk(make):
        def run(frame):
            return pd.DataFrame(make().fit_transform(frame), index=frame.index, columns=frame.columns)
        return run

    def aerec(kind, **settings):
        return lambda frame: TableAutoencoder(kind=kind, seed=seed, **settings).fit(frame).impute(frame)

    settings = IMPUTE_SETTINGS if settings is None else settings
    out = {f"aerec {kind}": aerec(kind, **settings) for kind in kinds}
    if "denoising" in kinds:
        out["aerec denoising, 1 member"] = aerec("denoising")
    out.update({
        "column mean": sk(lambda: SimpleImputer(strategy="mean")),
        "KNNImputer()": sk(KNNImputer),
        "IterativeImputer": sk(lambda: IterativeImputer(random_state=seed)),
    })
    return out


def imputation_tasks(full: pd.DataFrame, seed: int, dev: bool):
    """``(table with holes, truth, cells to score, scale)`` for one seed: the protocol's, or (``dev``) three
    development folds that hide a further 1/16 of the observed cells each and score those."""
    holey, hidden = with_holes(full, seed)
    if not dev:
        yield holey, full, hidden, full.std(ddof=0)
        return
    fold_of = np.random.default_rng(1000 + seed).integers(0, 16, holey.shape)
    for fold in range(3):
        extra = (fold_of == fold) & holey.notna().to_numpy()
        yield holey.mask(extra), holey, extra, holey.std(ddof=0)


def run_imputation(seeds, tables=TABLES, dev: bool = False, settings=None, kinds=KINDS) -> tuple[pd.DataFrame, pd.DataFrame]:
    results, seconds = {}, {}
    for table_name in tables:
        full = load_table(table_name)
        for seed in seeds:
            for holey, truth, hidden, scale in imputation_tasks(full, seed, dev):
                for name, impute in imputers(seed, settings, kinds).items():
                    start = time.perf_counter()
                    filled = impute(holey)
                    seconds.setdefault((name, table_name), []).append(time.perf_counter() - start)
                    err = ((filled - truth) / scale).to_numpy()[hidden]
                    results.setdefault((name, table_name), []).append(float(np.sqrt(np.mean(err ** 2))))
            print(f"  {table_name} seed {seed}: " + ", ".join(
                f"{n}={v[-1]:.3f}" for (n, t), v in results.items() if t == table_name), file=sys.stderr, flush=True)
    table = pd.DataFrame({t: {n: f"{np.mean(results[n, t]):.4f} ± {np.std(results[n, t]):.4f}"
                              for (n, tt) in results if tt == t} for t in tables})
    raw = pd.DataFrame({t: {n: np.mean(results[n, t]) for (n, tt) in results if tt == t} for t in tables})
    table["fit+impute s"] = [f"{np.mean([s for (n, t), v in seconds.items() if n == name for s in v]):.2f}"
                             for name in table.index]
    return table.rename_axis("imputer"), raw


def run_anomaly(kinds, digits=range(10)) -> pd.DataFrame:
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    data = aerec.datasets.mnist()
    pixels = data.images.reshape(len(data.images), -1).astype(np.float32) / 255.0
    queries, database = pixels[:1000], pixels[1000:]
    q_labels, d_labels = data.labels[:1000], data.labels[1000:]
    columns = [f"p{j}" for j in range(pixels.shape[1])]
    q_frame = pd.DataFrame(queries, columns=columns)
    rows, seconds = {}, {}
    for digit in digits:
        train = database[d_labels == digit]
        anomalous = q_labels != digit
        scores = {}
        def timed(name, score):
            start = time.perf_counter()
            scores[name] = score()
            seconds.setdefault(name, []).append(time.perf_counter() - start)

        for kind in kinds:
            timed(f"aerec {kind}", lambda: TableAutoencoder(kind=kind, seed=0, **MNIST_SETTINGS).fit(
                pd.DataFrame(train, columns=columns)).anomaly_score(q_frame).to_numpy())

        def pca_error():
            pca = PCA(n_components=MNIST_CODE, random_state=0).fit(train)
            return ((queries - pca.inverse_transform(pca.transform(queries))) ** 2).sum(axis=1)

        timed(f"PCA ({MNIST_CODE} components)", pca_error)
        timed("IsolationForest", lambda: -IsolationForest(random_state=0).fit(train).score_samples(queries))
        rows[digit] = {name: auroc(anomalous, s) for name, s in scores.items()}
        print(f"  digit {digit}: " + ", ".join(f"{n}={v:.3f}" for n, v in rows[digit].items()), file=sys.stderr,
              flush=True)
    frame = pd.DataFrame(rows).T
    frame.loc["mean"] = frame.mean()
    frame = frame.T.round(4)
    frame["fit+score s"] = [f"{np.mean(seconds[name]):.1f}" for name in frame.index]
    return frame.rename_axis("scorer")


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", nargs="+", default=["impute", "anomaly"], choices=["impute", "anomaly"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS),
                        help="autoencoder kinds to run")
    parser.add_argument("--digits", nargs="+", type=int, default=list(range(10)), choices=range(10),
                        help="digits in the anomaly part (the protocol: all ten)")
    parser.add_argument("--dev", action="store_true",
                        help="imputation on the development split (observed cells only), for choosing settings")
    parser.add_argument("--settings", type=json.loads, default=None,
                        help=f"JSON added to every kind's defaults in imputation (default {IMPUTE_SETTINGS})")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", UserWarning)

    lines = [f"Machine: {machine()}", ""]
    if "impute" in args.part:
        table, raw = run_imputation(args.seeds, args.tables, args.dev, args.settings, args.kinds)
        best = raw.loc[[f"aerec {k}" for k in args.kinds]]
        wins = int((best.min() < raw.loc["IterativeImputer"]).sum())
        split = ("DEVELOPMENT split: a further 1/16 of the observed cells hidden, 3 folds per seed" if args.dev
                 else "20% MCAR")
        lines += [f"### F. Imputation RMSE over the hidden cells, standardised units ({split}; mean ± std over "
                  f"seeds {args.seeds}; lower is better)", "", markdown(table), "",
                  f"aerec settings added to each kind's defaults: {IMPUTE_SETTINGS if args.settings is None else args.settings}.",
                  "",
                  f"Best aerec kind per table: {dict(best.idxmin())}; it beats IterativeImputer on {wins} of "
                  f"{len(args.tables)} table(s)."]
        if "denoising" in args.kinds:  # the kind the development split chose, judged without looking at the others
            chosen = int((raw.loc["aerec denoising"] < raw.loc["IterativeImputer"]).sum())
            lines += [f"The denoising kind (the development split's choice) beats IterativeImputer on {chosen} of "
                      f"{len(args.tables)} table(s)."]
        lines += [""]
    if "anomaly" in args.part:
        frame = run_anomaly(args.kinds, args.digits)
        ae = frame.loc[[f"aerec {k}" for k in args.kinds], "mean"]
        pca = frame.loc[f"PCA ({MNIST_CODE} components)", "mean"]
        lines += ["### F. One-class MNIST: AUROC of 'not d' vs 'd' (train on database images of d, score the 1,000 "
                  "queries)", "", markdown(frame), "",
                  f"Best autoencoder: {ae.idxmax()} (mean AUROC {ae.max():.4f}) vs PCA {pca:.4f}; autoencoder settings "
                  f"{MNIST_SETTINGS}.", ""]
    return emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
