"""Protocol F (tables: missing values and anomalies).

Missing values: on the feature tables of ``load_diabetes``, ``load_wine`` and ``load_breast_cancer``,
for seeds 0..4 hide 20% of the cells completely at random (``numpy.random.default_rng(seed)``),
fit on the table with the holes and report the RMSE over the hidden cells in standardised units
(each column scaled by its mean and standard deviation over the full table), mean ± std over the
seeds; beside each aerec ``TableAutoencoder`` kind: column means, ``KNNImputer()`` and
``IterativeImputer(random_state=seed)``. The autoencoders use their defaults (nothing is tuned on
the hidden cells); their own early stopping uses cells hidden in a validation part of the rows.

Anomalies (one-class MNIST, the split of protocol C): for each digit d, train on the database
images (the last 9,000 test images) of digit d only, score the 1,000 query images and report the
AUROC of "not d" against "d", and the mean over digits; beside it: PCA reconstruction error with
the same code size, and ``IsolationForest(random_state=0)`` on pixels.

    AEREC_DATA_HOME=../shared/data python benchmarks/protocol_f.py [--part impute anomaly] [--out benchmarks/results/protocol_f.md]
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
from _common import machine, markdown  # noqa: E402
from aerec.evaluate import auroc  # noqa: E402
from aerec.impute import TableAutoencoder  # noqa: E402

KINDS = ("undercomplete", "sparse", "contractive", "denoising", "variational")
TABLES = ("diabetes", "wine", "breast_cancer")
#: one-class MNIST: the code size shared by the autoencoders and PCA, and the autoencoders' settings
MNIST_CODE = 32
MNIST_SETTINGS = {"hidden": (256,), "code_dim": MNIST_CODE, "activation": "relu", "standardize": False,
                  "batch_size": 64, "max_epochs": 200, "patience": 20}


def load_table(name: str) -> pd.DataFrame:
    import sklearn.datasets

    data = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    return data.data.astype("float64")


def with_holes(table: pd.DataFrame, seed: int, share: float = 0.2) -> tuple[pd.DataFrame, np.ndarray]:
    hidden = np.random.default_rng(seed).random(table.shape) < share
    return table.mask(hidden), hidden


def standardised_rmse(full: pd.DataFrame, imputed: pd.DataFrame, hidden: np.ndarray) -> float:
    mean, std = full.mean(), full.std(ddof=0)
    err = ((imputed - full) / std).to_numpy()[hidden]
    return float(np.sqrt(np.mean(err ** 2)))


def imputers(seed: int) -> dict:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    def sk(make):
        def run(frame):
            return pd.DataFrame(make().fit_transform(frame), index=frame.index, columns=frame.columns)
        return run

    out = {f"aerec {kind}": (lambda frame, kind=kind: TableAutoencoder(kind=kind, seed=seed).fit(frame).impute(frame))
           for kind in KINDS}
    out.update({
        "column mean": sk(lambda: SimpleImputer(strategy="mean")),
        "KNNImputer()": sk(KNNImputer),
        "IterativeImputer": sk(lambda: IterativeImputer(random_state=seed)),
    })
    return out


def run_imputation(seeds, tables=TABLES) -> tuple[pd.DataFrame, pd.DataFrame]:
    results, seconds = {}, {}
    for table_name in tables:
        full = load_table(table_name)
        for seed in seeds:
            holey, hidden = with_holes(full, seed)
            for name, impute in imputers(seed).items():
                start = time.perf_counter()
                filled = impute(holey)
                seconds.setdefault((name, table_name), []).append(time.perf_counter() - start)
                results.setdefault((name, table_name), []).append(standardised_rmse(full, filled, hidden))
            print(f"  {table_name} seed {seed}: " + ", ".join(
                f"{n}={v[-1]:.3f}" for (n, t), v in results.items() if t == table_name), file=sys.stderr, flush=True)
    table = pd.DataFrame({t: {n: f"{np.mean(results[n, t]):.4f} ± {np.std(results[n, t]):.4f}"
                              for (n, tt) in results if tt == t} for t in tables})
    raw = pd.DataFrame({t: {n: np.mean(results[n, t]) for (n, tt) in results if tt == t} for t in tables})
    table["fit+impute s"] = [f"{np.mean([s for (n, t), v in seconds.items() if n == name for s in v]):.2f}"
                             for name in table.index]
    return table.rename_axis("imputer"), raw


def run_anomaly(kinds) -> pd.DataFrame:
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    data = aerec.datasets.mnist()
    pixels = data.images.reshape(len(data.images), -1).astype(np.float32) / 255.0
    queries, database = pixels[:1000], pixels[1000:]
    q_labels, d_labels = data.labels[:1000], data.labels[1000:]
    columns = [f"p{j}" for j in range(pixels.shape[1])]
    q_frame = pd.DataFrame(queries, columns=columns)
    rows = {}
    for digit in range(10):
        train = database[d_labels == digit]
        anomalous = q_labels != digit
        scores = {}
        for kind in kinds:
            model = TableAutoencoder(kind=kind, seed=0, **MNIST_SETTINGS).fit(pd.DataFrame(train, columns=columns))
            scores[f"aerec {kind}"] = model.anomaly_score(q_frame).to_numpy()
        pca = PCA(n_components=MNIST_CODE, random_state=0).fit(train)
        recon = pca.inverse_transform(pca.transform(queries))
        scores[f"PCA ({MNIST_CODE} components)"] = ((queries - recon) ** 2).sum(axis=1)
        forest = IsolationForest(random_state=0).fit(train)
        scores["IsolationForest"] = -forest.score_samples(queries)
        rows[digit] = {name: auroc(anomalous, s) for name, s in scores.items()}
        print(f"  digit {digit}: " + ", ".join(f"{n}={v:.3f}" for n, v in rows[digit].items()), file=sys.stderr,
              flush=True)
    frame = pd.DataFrame(rows).T
    frame.loc["mean"] = frame.mean()
    return frame.T.round(4).rename_axis("scorer")


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", nargs="+", default=["impute", "anomaly"], choices=["impute", "anomaly"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS),
                        help="autoencoder kinds in the anomaly part")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", UserWarning)

    lines = [f"Machine: {machine()}", ""]
    if "impute" in args.part:
        table, raw = run_imputation(args.seeds, args.tables)
        best = raw.loc[[f"aerec {k}" for k in KINDS]]
        wins = int((best.min() < raw.loc["IterativeImputer"]).sum())
        lines += [f"### F. Imputation RMSE over the hidden cells, standardised units (20% MCAR, mean ± std over seeds "
                  f"{args.seeds}; lower is better)", "", markdown(table), "",
                  f"Best aerec kind per table: {dict(best.idxmin())}; it beats IterativeImputer on {wins} of "
                  f"{len(args.tables)} table(s).", ""]
    if "anomaly" in args.part:
        frame = run_anomaly(args.kinds)
        ae = frame.loc[[f"aerec {k}" for k in args.kinds], "mean"]
        pca = frame.loc[f"PCA ({MNIST_CODE} components)", "mean"]
        lines += ["### F. One-class MNIST: AUROC of 'not d' vs 'd' (train on database images of d, score the 1,000 "
                  "queries)", "", markdown(frame), "",
                  f"Best autoencoder: {ae.idxmax()} (mean AUROC {ae.max():.4f}) vs PCA {pca:.4f}; autoencoder settings "
                  f"{MNIST_SETTINGS}.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
