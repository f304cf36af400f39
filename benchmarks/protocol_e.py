"""Protocol E (item cold start on MovieLens-100K): content models on top of recommenders vs. two baselines.

For each seed, a recommender is fitted on ``train.tsv`` (positives on warm items) with the
features of every item from ``u.item`` (title, release date, genres; the IMDb URL is left out:
it only repeats the title). Its content model (:class:`aerec.ContentModel`) codes the cold items,
which are added to the catalogue. Every user with a positive in the evaluation file ranks that
file's cold items only (``recommend(users, k, items=cold_items)``), and Recall@20, NDCG@20 and
HR@10 are averaged over those users, then mean ± std over the seeds. In the same run:

- genre popularity: a cold item's score for a user is the number of the user's training
  positives that share each of its genres, summed over its genres;
- TF-IDF nearest neighbours: a cold item's score is its mean cosine similarity to the user's
  training positives, with TF-IDF vectors of each item's features as one document (title words,
  which include the release year, and genre names; IDF over all items).

``--split valid`` scores the cold items of ``valid.tsv`` (design choices were made there, with
the designs of ``--designs``); ``--split test`` (the default) gives the reported figures.

    AEREC_DATA_HOME=../shared/data python benchmarks/protocol_e.py [--split test] [--seeds 0 1 2 3 4]
        [--models "EASE + content" "MultDAE + content"] [--out benchmarks/results/protocol_e.md]
    AEREC_DATA_HOME=../shared/data python benchmarks/protocol_e.py --split valid --designs --out benchmarks/results/protocol_e_valid.md
"""
from __future__ import annotations

import argparse
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
from aerec.evaluate import protocol_dir, summarize
from aerec.metrics import ranking_metrics  # noqa: E402

METRICS = ("recall@20", "ndcg@20", "hr@10")

#: name -> (recommender for a seed, content model for a seed): the reported models. The neural
#: models train a fixed 100 epochs: protocol E has no held-out interactions of warm items to stop on.
MODELS = {
    "EASE + content": (lambda seed: aerec.EASE(l2=300.0, seed=seed), lambda seed: aerec.ContentModel(seed=seed)),
    "MultDAE + content": (lambda seed: aerec.MultDAE(epochs=100, patience=None, seed=seed),
                          lambda seed: aerec.ContentModel(seed=seed)),
    "MultVAE + content": (lambda seed: aerec.MultVAE(epochs=100, patience=None, seed=seed),
                          lambda seed: aerec.ContentModel(seed=seed)),
    "CDAE + content": (lambda seed: aerec.CDAE(epochs=100, patience=None, seed=seed),
                       lambda seed: aerec.ContentModel(seed=seed)),
    # the same user code (1) for everyone: what the features alone say of an item's popularity
    "Popularity + content": (lambda seed: aerec.Popularity(seed=seed), lambda seed: aerec.ContentModel(seed=seed)),
}
#: models whose content-model designs are compared on the validation split (``--designs``)
DESIGN_MODELS = ["EASE + content", "MultDAE + content"]

#: content-model designs compared on the validation split (``--split valid --designs``)
DESIGNS = {
    "ridge (default: l2=10, 20 bins)": {},
    "ridge, 10 bins": {"numeric_bins": 10},
    "ridge, l2=1": {"l2": 1.0},
    "ridge, l2=100": {"l2": 100.0},
    "softmax, MLP 256": {"loss": "softmax"},
    "softmax, MLP 256, 5 epochs, no early stop": {"loss": "softmax", "validation_fraction": 0.0, "epochs": 5},
    "softmax, MLP 256, text embeddings": {"loss": "softmax", "text_mode": "embedding"},
    "softmax, linear": {"loss": "softmax", "hidden_dim": 0},
}


def item_features() -> pd.DataFrame:
    """Every item's features from ``u.item`` (read as latin-1 by the loader)."""
    return aerec.datasets.movielens_100k().items[["item", "title", "release_date", "genres"]]


def load_split(seed: int) -> dict[str, pd.DataFrame]:
    directory = protocol_dir() / "ml100k-coldstart" / f"seed{seed}"
    return {name: pd.read_csv(directory / f"{name}.tsv", sep="\t") for name in ("train", "valid", "test")}


# --- baselines: a score matrix (users x candidate items) ----------------------------------
def _user_item_matrix(train: pd.DataFrame, users: np.ndarray, items: np.ndarray) -> sp.csr_matrix:
    known = train[train["user"].isin(users) & train["item"].isin(items)]
    rows = pd.Index(users).get_indexer(known["user"])
    cols = pd.Index(items).get_indexer(known["item"])
    return sp.csr_matrix((np.ones(len(known), np.float32), (rows, cols)), shape=(len(users), len(items)))


def genre_popularity_scores(train, features, users, candidates) -> np.ndarray:
    genres = features.set_index("item")["genres"].str.get_dummies(sep="|")
    warm = np.sort(train["item"].unique())
    X = _user_item_matrix(train, users, warm)
    per_user = X @ genres.loc[warm].to_numpy(np.float32)  # the user's positives per genre
    return per_user @ genres.loc[candidates].to_numpy(np.float32).T


def tfidf_documents(features: pd.DataFrame) -> pd.Series:
    """Each item's features as one document: its title words (the title ends with the release year)
    and its genre names as tokens. On the validation split this beat title words alone, and adding
    a release-year token or dropping the title did worse: the baseline is the best of those four."""
    genres = features["genres"].str.replace(r"[^A-Za-z|]", "", regex=True).str.split("|")
    docs = features["title"].astype(str) + " " + genres.map(lambda g: " ".join(f"genre{x}" for x in g if x))
    return pd.Series(docs.to_numpy(), index=features["item"].to_numpy())


def tfidf_neighbour_scores(train, features, users, candidates) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = tfidf_documents(features)
    vectorizer = TfidfVectorizer().fit(docs.to_numpy())  # rows are L2-normalised: dot products are cosines
    warm = np.sort(train["item"].unique())
    X = _user_item_matrix(train, users, warm)
    counts = np.maximum(np.asarray(X.sum(axis=1)).ravel(), 1.0)
    similarity = vectorizer.transform(docs.loc[warm]) @ vectorizer.transform(docs.loc[candidates]).T
    return np.asarray((sp.diags(1.0 / counts) @ X @ similarity).todense())


def _metrics_of_scores(scores: np.ndarray, users, candidates, truth: pd.DataFrame) -> pd.DataFrame:
    idx, _ = aerec.recommend.top_k(np.asarray(scores, np.float32), 20)
    recs = pd.DataFrame({"user": np.repeat(users, idx.shape[1]), "item": np.asarray(candidates)[idx.ravel()],
                         "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(users))})
    return ranking_metrics(recs, truth, METRICS)


# --- one seed ----------------------------------------------------------------------------
def run_seed(seed: int, split: str, models: dict, features: pd.DataFrame) -> list[dict]:
    data = load_split(seed)
    train, truth = data["train"], data[split]
    users, candidates = np.sort(truth["user"].unique()), np.sort(truth["item"].unique())
    rows = []
    for name, scores in (("genre popularity", genre_popularity_scores),
                         ("TF-IDF nearest neighbours", tfidf_neighbour_scores)):
        start = time.perf_counter()
        per_user = _metrics_of_scores(scores(train, features, users, candidates), users, candidates, truth)
        rows.append({"model": name, "seed": seed, **per_user.mean().to_dict(), "fit_seconds": time.perf_counter() - start})
    for name, (make_model, make_content) in models.items():
        start = time.perf_counter()
        model = make_model(seed).fit(train, item_features=features, content=make_content(seed))
        seconds = time.perf_counter() - start
        # users with no training positive are unknown to the model: ranked without information, like the baselines
        recs = model.recommend(users, k=20, items=candidates, exclude_seen=False, on_unknown="popular")
        per_user = ranking_metrics(recs, truth, METRICS)
        rows.append({"model": name, "seed": seed, **per_user.mean().to_dict(), "fit_seconds": seconds,
                     "content_seconds": model.content_.fit_seconds_})
        print(f"seed {seed} {name}: " + ", ".join(f"{m} {rows[-1][m]:.4f}" for m in METRICS), flush=True)
    return rows


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["valid", "test"], default="test")
    parser.add_argument("--models", nargs="+", default=None, choices=list(MODELS),
                        help="default: every model, or DESIGN_MODELS with --designs")
    parser.add_argument("--designs", action="store_true",
                        help="compare the content-model designs of DESIGNS on every model (use with --split valid)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this markdown file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", aerec.exceptions.UnknownIdsWarning)

    models = {}
    for name in args.models or (DESIGN_MODELS if args.designs else list(MODELS)):
        make_model, make_content = MODELS[name]
        if not args.designs:
            models[name] = (make_model, make_content)
            continue
        base = name.removesuffix(" + content")
        for design, params in DESIGNS.items():
            models[f"{base} + {design}"] = (make_model, lambda seed, p=params: aerec.ContentModel(seed=seed, **p))

    features = item_features()
    rows = []
    for seed in args.seeds:
        rows += run_seed(seed, args.split, models, features)
    results = pd.DataFrame(rows)

    table = {}
    tfidf = results[results["model"] == "TF-IDF nearest neighbours"].set_index("seed")["recall@20"]
    for name, group in results.groupby("model", sort=False):
        ratio = group.set_index("seed")["recall@20"] / tfidf
        table[name] = {**summarize(group, METRICS).to_dict(),
                       "recall@20 vs TF-IDF": f"{group['recall@20'].mean() / tfidf.mean() - 1:+.1%} "
                                              f"(seeds {ratio.min() - 1:+.0%}..{ratio.max() - 1:+.0%})",
                       "seconds": f"{group['fit_seconds'].mean():.1f}"}
    frame = pd.DataFrame(table).T.rename_axis("model")
    per_seed = results.pivot(index="model", columns="seed", values="recall@20").loc[list(table)].round(4)
    lines = [
        f"Machine: {machine()}",
        f"Command: `AEREC_DATA_HOME=../shared/data python benchmarks/protocol_e.py {' '.join(argv or sys.argv[1:])}`",
        f"Split: cold items of `{args.split}.tsv`; seeds {args.seeds}",
        "Content model: `aerec.ContentModel()` defaults (ridge regression of the item codes on the features), "
        "chosen among the designs of `--designs` on the validation split (`protocol_e_valid.md`)"
        if args.split == "test" and not args.designs else "",
        "",
        f"### Protocol E, item cold start ({args.split} cold items; mean ± std over {len(args.seeds)} seeds)",
        "",
        markdown(frame),
        "",
        "seconds: fitting the recommender and its content model (for the baselines: scoring); the content model "
        "alone took " + (f"{results['content_seconds'].mean():.1f} s on average." if "content_seconds" in results
                         else "no time."),
        "",
        "Recall@20 per seed:",
        "",
        markdown(per_seed.rename(columns=lambda s: f"seed {s}")),
        "",
    ]
    return emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
