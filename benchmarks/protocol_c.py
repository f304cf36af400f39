"""Protocol C (image similarity search on the MNIST test set): precision@10 and @100.

Queries are the first 1,000 images, the database the other 9,000. Models train without labels on
database images only. Beside them, in the same run: raw pixels (784-d, L2 and cosine) and PCA
fitted on the database at the code's size. Search time per query (exact FAISS search over the
database, all queries in one batch) is reported for every representation.

    AEREC_DATA_HOME=../shared/data python benchmarks/protocol_c.py [--models conv-ae conv-dae conv-vae]
        [--dims 16 32 64] [--epochs 30] [--out benchmarks/results/protocol_c.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aerec  # noqa: E402
from _common import emit, machine, markdown  # noqa: E402
from aerec.images import ImageSearch  # noqa: E402
from aerec.index import EmbeddingIndex  # noqa: E402


def precision(db_labels, query_labels, found_ids: np.ndarray, k: int) -> float:
    return float((db_labels[found_ids[:, :k]] == query_labels[:, None]).mean())


def evaluate(name, dim, db_vectors, query_vectors, metric, db_labels, query_labels, fit_seconds=0.0) -> dict:
    index = EmbeddingIndex(metric=metric, kind="flat").build(db_vectors)
    start = time.perf_counter()
    found = index.search(query_vectors, k=100)
    per_query_ms = (time.perf_counter() - start) / len(query_vectors) * 1e3
    ids = found["id"].to_numpy().reshape(len(query_vectors), 100)
    return {"representation": name, "dim": dim, "metric": metric,
            "P@10": round(precision(db_labels, query_labels, ids, 10), 4),
            "P@100": round(precision(db_labels, query_labels, ids, 100), 4),
            "search ms/query": round(per_query_ms, 3), "fit s": round(fit_seconds, 1)}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["conv-ae", "conv-dae", "conv-vae"])
    parser.add_argument("--dims", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--metric", default="cosine")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    data = aerec.datasets.mnist()
    queries, query_labels = data.images[:1000], data.labels[:1000]
    db, db_labels = data.images[1000:], data.labels[1000:]
    flat_db = db.reshape(len(db), -1).astype(np.float32) / 255
    flat_q = queries.reshape(len(queries), -1).astype(np.float32) / 255

    rows = [evaluate("raw pixels", 784, flat_db, flat_q, m, db_labels, query_labels) for m in ("l2", "cosine")]
    mean = flat_db.mean(axis=0)
    _, _, vt = np.linalg.svd(flat_db - mean, full_matrices=False)
    for dim in args.dims:
        for m in ("l2", "cosine"):
            rows.append(evaluate(f"PCA-{dim}", dim, (flat_db - mean) @ vt[:dim].T, (flat_q - mean) @ vt[:dim].T, m,
                                 db_labels, query_labels))
    for model in args.models:
        for dim in args.dims:
            search = ImageSearch(kind=model, code_dim=dim, epochs=args.epochs, metric=args.metric, seed=0,
                                 verbose=0).fit(db)
            codes_db = search.codes(db).to_numpy()
            codes_q = search.codes(queries).to_numpy()
            epochs = len(search.history_["loss"])
            rows.append({**evaluate(f"{model} ({epochs} ep)", dim, codes_db, codes_q, args.metric, db_labels,
                                    query_labels, search.fit_seconds_)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    text = "\n".join([f"Machine: {machine()}", f"Protocol C: 1,000 queries, 9,000 database images; models: "
                      f"{args.epochs} epochs max, early stopping on 10% of the database, seed 0", "",
                      markdown(table, index=False)])
    return emit(text, args.out)


if __name__ == "__main__":
    main()
