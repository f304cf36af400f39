"""Protocol G (next-item recommendation on MovieLens-100K in time order), every row in one run.

Reads the split files of ``../shared/benchmarks/ml100k-sequential`` (G1: leave-last-out of every user;
G2: unseen users, their fold-in sequence in, their last item out; never re-drawn). Full ranking over
the item universe (every item in any file of the protocol), the user's history excluded; HR@10 and
NDCG@10 (``1 / log2(rank + 2)``) over users. Rows:

- popularity: training interactions per item;
- EASE (bag): the history as a set of items, λ chosen on the validation split;
- transitions: first-order item transitions, last item -> next, counted in the training sequences;
- EASE + transitions: ``EASE / max|EASE| + w * T[last] / max T[last]`` per user, w chosen on validation;
- aerec MultDAE (bag): defaults, early stopping on validation NDCG@100, over the same seeds;
- aerec SequentialDAE: early stopping on validation NDCG@10 (``--patience``), over ``--seeds``.

G1 test: every model is fit on ``train.tsv`` only (validation on ``valid.tsv``); the history of a test
user is train + valid, folded in (nothing is retrained) and excluded from the ranking. G2: models
fit on ``G2/train.tsv``; validation users are folded in from ``valid_fold_in.tsv``, test users from
``test_fold_in.tsv``. Training seconds per epoch are the aerec models' own timers (training steps
only, validation not included).

    AEREC_DATA_HOME=../shared/data python benchmarks/protocol_g.py [--seeds 0 1 2 3 4] [--epochs 200] [--patience 30]
        [--params '{"max_length": 100}'] [--protocols G1 G2] [--out benchmarks/results/protocol_g.md]
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aerec  # noqa: E402
from _common import emit, machine, markdown  # noqa: E402

SPLITS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "ml100k-sequential"
K = 10
EASE_L2 = [50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
MIX_WEIGHTS = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def load(root: Path) -> dict:
    g1 = {name: read(root / "G1" / f"{name}.tsv") for name in ("train", "valid", "test")}
    g2 = {name: read(root / "G2" / f"{name}.tsv")
          for name in ("train", "valid_fold_in", "valid_target", "test_fold_in", "test_target")}
    universe = np.unique(np.concatenate([f["item"].to_numpy() for f in [*g1.values(), *g2.values()]]))
    return {"G1": g1, "G2": g2, "universe": universe}


class Task:
    """Histories (ordered, as positions in the universe) and one target per user."""

    def __init__(self, history: pd.DataFrame, target: pd.DataFrame, universe: np.ndarray):
        history = history.sort_values("ts", kind="stable")  # the files are in time order already; ties keep it
        target = target.drop_duplicates("user", keep="last").set_index("user")["item"]
        self.users = np.asarray(target.index)
        self.frame = history[history["user"].isin(self.users)]
        col = np.searchsorted(universe, self.frame["item"].to_numpy())
        row = pd.Index(self.users).get_indexer(self.frame["user"].to_numpy())
        self.matrix = sp.csr_matrix((np.ones(len(row), np.float32), (row, col)), shape=(len(self.users), len(universe)))
        self.matrix.data[:] = 1.0
        last = pd.Series(col, index=row).groupby(level=0).last()
        self.last = np.full(len(self.users), -1)
        self.last[last.index] = last.to_numpy()
        self.target = np.searchsorted(universe, target.to_numpy())
        self.universe = universe

    def metrics(self, scores: np.ndarray) -> dict:
        """HR@10 and NDCG@10 of full score rows (history excluded here)."""
        scores = np.array(scores, dtype=np.float64, copy=True)
        r, c = self.matrix.nonzero()
        scores[r, c] = -np.inf
        target = scores[np.arange(len(scores)), self.target]
        rank = (scores > target[:, None]).sum(axis=1)  # ties counted in the target's favour
        return self._summary(rank)

    def metrics_of_lists(self, recs: pd.DataFrame, user: str = "user") -> dict:
        """HR@10 and NDCG@10 of top-10 lists from an aerec model (items it does not know rank below its list)."""
        wanted = pd.Series(self.universe[self.target], index=self.users)
        recs = recs[recs["rank"] <= K]
        hit = recs[recs["item"].to_numpy() == wanted.reindex(recs[user]).to_numpy()]
        rank = pd.Series(K, index=self.users, dtype=float)
        rank[hit[user].to_numpy()] = hit["rank"].to_numpy() - 1
        return self._summary(rank.to_numpy())

    def _summary(self, rank: np.ndarray) -> dict:
        hit = rank < K
        return {"HR@10": float(hit.mean()), "NDCG@10": float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean())}


def train_matrix(train: pd.DataFrame, universe: np.ndarray) -> sp.csr_matrix:
    users = pd.Index(np.unique(train["user"]))
    return sp.csr_matrix((np.ones(len(train), np.float32),
                          (users.get_indexer(train["user"]), np.searchsorted(universe, train["item"]))),
                         shape=(len(users), len(universe)))


def ease_weights(X: sp.csr_matrix, l2: float) -> np.ndarray:
    G = (X.T @ X).toarray().astype(np.float64)
    G[np.diag_indices_from(G)] += l2
    P = np.linalg.inv(G)
    B = -P / np.diag(P)
    B[np.diag_indices_from(B)] = 0.0
    return B


def transitions(train: pd.DataFrame, universe: np.ndarray) -> np.ndarray:
    ordered = train.sort_values("ts", kind="stable")
    col = np.searchsorted(universe, ordered["item"].to_numpy())
    same = ordered["user"].to_numpy()[1:] == ordered["user"].to_numpy()[:-1]
    T = np.zeros((len(universe), len(universe)))
    np.add.at(T, (col[:-1][same], col[1:][same]), 1.0)
    return T


def baselines(train: pd.DataFrame, valid: Task, test: Task, universe: np.ndarray) -> tuple[dict, dict]:
    X = train_matrix(train, universe)
    popularity = np.asarray(X.sum(axis=0)).ravel()
    rows, chosen = {}, {}
    tie = 1e-9 * popularity / popularity.max()  # ties (e.g. an item never followed) broken by popularity
    rows["popularity"] = test.metrics(np.broadcast_to(popularity, test.matrix.shape))

    by_l2 = {l2: ease_weights(X, l2) for l2 in EASE_L2}
    l2 = max(EASE_L2, key=lambda v: valid.metrics(valid.matrix @ by_l2[v])["NDCG@10"])
    B = by_l2[l2]
    chosen["EASE λ"] = l2
    rows["EASE (bag)"] = test.metrics(test.matrix @ B)

    T = transitions(train, universe)
    rows["transitions (last item -> next)"] = test.metrics(T[test.last] + tie)

    def mixed(task: Task, w: float) -> np.ndarray:
        ease = np.asarray(task.matrix @ B)
        ease = ease / np.maximum(np.abs(ease).max(axis=1, keepdims=True), 1e-12)
        trans = T[task.last]
        trans = trans / np.maximum(trans.max(axis=1, keepdims=True), 1e-12)
        return ease + w * trans + tie

    w = max(MIX_WEIGHTS, key=lambda v: valid.metrics(mixed(valid, v))["NDCG@10"])
    chosen["mix weight w"] = w
    rows["EASE + transitions"] = test.metrics(mixed(test, w))
    return rows, chosen


def run_protocol(name: str, data: dict, seeds, epochs: int, patience: int, sequential_params: dict) -> tuple:
    universe = data["universe"]
    split = data[name]
    if name == "G1":
        train = split["train"]
        valid_task = Task(train, split["valid"], universe)
        test_history = pd.concat([train, split["valid"]]).sort_values(["user", "ts"], kind="stable")
        test_task = Task(test_history, split["test"], universe)
        valid_history = train
        fit_valid = split["valid"]
        valid_note = "valid.tsv (weak: the valid item of each training user)"
    else:
        train = split["train"]
        valid_task = Task(split["valid_fold_in"], split["valid_target"], universe)
        test_task = Task(split["test_fold_in"], split["test_target"], universe)
        test_history = split["test_fold_in"]
        valid_history = split["valid_fold_in"]
        fit_valid = (split["valid_fold_in"], split["valid_target"])
        valid_note = "valid_fold_in.tsv -> valid_target.tsv (strong: unseen users folded in)"

    rows, chosen = baselines(train, valid_task, test_task, universe)
    table = {k: {m: f"{v:.4f}" for m, v in r.items()} | {"s / epoch": "", "epochs (best)": ""} for k, r in rows.items()}

    def fold_in(model, task: Task = test_task, history: pd.DataFrame = test_history) -> dict:
        """The task's metrics of the model's top-10 lists for its users' histories, folded in as new users."""
        history = history[history["user"].isin(task.users)].assign(user=lambda d: "new-" + d["user"].astype(str))
        recs = model.recommend_for_history(history, k=K)
        recs["user"] = recs["user"].str.slice(4).astype(task.users.dtype)
        return task.metrics_of_lists(recs)

    start = time.perf_counter()
    bag = []
    for seed in seeds:  # aerec's best bag-of-items model, over the same seeds
        dae = aerec.MultDAE(seed=seed).fit(train, valid=fit_valid)
        bag.append(fold_in(dae) | {"s / epoch": float(np.mean(dae.history_["train_seconds"])),
                                   "epochs": f"{len(dae.history_['loss'])} ({dae.best_epoch_ + 1})"})
    bag = pd.DataFrame(bag)
    table[f"aerec MultDAE (bag, seeds {list(seeds)})"] = {
        m: f"{bag[m].mean():.4f} ± {bag[m].std(ddof=0):.4f}" for m in ("HR@10", "NDCG@10")} | {
        "s / epoch": f"{bag['s / epoch'].mean():.2f}", "epochs (best)": ", ".join(bag["epochs"])}
    chosen["MultDAE seconds"] = round(time.perf_counter() - start, 1)

    runs = []
    for seed in seeds:
        start = time.perf_counter()
        model = aerec.SequentialDAE(**sequential_params, epochs=epochs, patience=patience, seed=seed)
        model.fit(train, valid=fit_valid, time="ts")
        m = fold_in(model)
        m.update({f"val {k}": v for k, v in fold_in(model, valid_task, valid_history).items()})
        m["s / epoch"] = float(np.mean(model.history_["train_seconds"]))
        m["epochs"] = len(model.history_["loss"])
        m["best"] = model.best_epoch_ + 1
        m["seconds"] = time.perf_counter() - start
        print(f"{name} seed {seed}: {m}", flush=True)
        runs.append(m)
    runs = pd.DataFrame(runs)

    def pm(col):
        return f"{runs[col].mean():.4f} ± {runs[col].std(ddof=0):.4f}"

    table[f"aerec SequentialDAE (seeds {list(seeds)})"] = {
        "HR@10": pm("HR@10"), "NDCG@10": pm("NDCG@10"), "s / epoch": f"{runs['s / epoch'].mean():.2f}",
        "epochs (best)": ", ".join(f"{e} ({b})" for e, b in zip(runs["epochs"], runs["best"]))}
    frame = pd.DataFrame(table).T
    frame.index.name = "model"
    return frame, chosen, runs, valid_note


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=200, help="most epochs of SequentialDAE")
    parser.add_argument("--patience", type=int, default=30, help="SequentialDAE's early-stopping patience")
    parser.add_argument("--params", type=json.loads, default={},
                        help='JSON of SequentialDAE hyperparameters besides the defaults, e.g. \'{"max_length": 100}\'')
    parser.add_argument("--protocols", nargs="+", default=["G1", "G2"], choices=["G1", "G2"])
    parser.add_argument("--splits", type=Path, default=SPLITS)
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this markdown file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", UserWarning)
    data = load(args.splits)
    params = args.params
    lines = [f"Command: `AEREC_DATA_HOME=../shared/data python benchmarks/protocol_g.py {shlex.join(argv or sys.argv[1:])}`",
             "", f"Machine: {machine()}", "",
             f"Item universe: {len(data['universe'])} items; full ranking, history excluded. SequentialDAE: "
             f"{'defaults and ' + json.dumps(params) if params else 'its defaults'} with epochs={args.epochs}, patience={args.patience} (early stopping on "
             f"validation NDCG@10).", ""]
    for name in args.protocols:
        frame, chosen, runs, valid_note = run_protocol(name, data, args.seeds, args.epochs, args.patience, params)
        test_note = ("history = train + valid, folded in (fit on train only, nothing retrained)" if name == "G1"
                     else "test_fold_in.tsv folded in (users unseen in training, nothing retrained)")
        lines += [f"### {name}: HR@10 / NDCG@10 on the test targets", "", f"Validation: {valid_note}. Test: {test_note}.",
                  f"Chosen on validation: {chosen}.", "", markdown(frame), "",
                  "SequentialDAE per seed:", "", markdown(runs.round(4), index=False), ""]
    return emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
