"""Milliseconds per Mult-VAE update: the full softmax against the sampled one, by catalogue size.

For each ``--items`` size, ``aerec.datasets.synthetic_interactions(--users, items, --interactions)``
is drawn and ``--steps`` updates of ``--batch-size`` users (the same batches for every variant) run
through the network's own ``train_step`` (``[I-600-200-600-I]``, Mult-VAE), after one update that
traces the graph:

- *full*: the softmax over every item (dense input rows, Keras' Adam);
- *sampled, Adam*: ``sampled_softmax=2048`` (sparse input rows, the loss of
  :func:`aerec.models.vae.sampled_multinomial_nll`), Keras' Adam (row-sparse gradients made dense);
- *sampled, LazyAdam*: the same with :class:`aerec.models.optimizers.LazyAdam`, what ``fit`` uses.

The float32 ``tf.matmul`` rate at 2048³ is measured in the same run: the full softmax's cost is
products (at that rate), the sampled one's is gathers and scatters (at the memory's rate).

    python benchmarks/softmax_bench.py --items 20000 40000 90000 --out benchmarks/results/softmax_bench.md
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, markdown, matmul_rate  # noqa: E402


def ms_per_step(X, sampled: int, lazy: bool, batches) -> float:
    import keras
    import tensorflow as tf

    from aerec.models.batches import dense_row_gather, sparse_row_gather
    from aerec.models.optimizers import LazyAdam
    from aerec.models.vae import MultinomialAutoencoder

    net = MultinomialAutoencoder(X.shape[1], hidden_dim=600, latent_dim=200, variational=True,
                                 sampled_softmax=sampled, seed=0)
    net.build((None, X.shape[1]))
    net.compile(optimizer=(LazyAdam if lazy else keras.optimizers.Adam)(1e-3))
    gather = (sparse_row_gather if sampled else dense_row_gather)(X)
    rows = [tf.function(lambda b=b: gather(b))() for b in batches]
    step = tf.function(lambda x: net.train_step(x))
    step(rows[0])
    start = time.perf_counter()
    for x in rows[1:]:
        step(x)
    return (time.perf_counter() - start) / (len(rows) - 1) * 1000


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", nargs="+", type=int, default=[20_000, 40_000, 90_000])
    parser.add_argument("--users", type=int, default=14_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import tensorflow as tf

    from aerec.data import Interactions
    from aerec.datasets import synthetic_interactions

    rate = matmul_rate()
    rows = []
    for n_items in args.items:
        X = Interactions.from_frame(synthetic_interactions(args.users, n_items, args.interactions, seed=0)).matrix
        order = np.random.default_rng(0).permutation(X.shape[0])
        batches = [tf.constant(np.sort(order[i:i + args.batch_size]), tf.int64)
                   for i in range(0, (args.steps + 1) * args.batch_size, args.batch_size)]
        touched = np.mean([len(np.unique(X[b.numpy()].indices)) for b in batches])
        full = ms_per_step(X, 0, False, batches)
        dense = ms_per_step(X, 2048, False, batches)
        lazy = ms_per_step(X, 2048, True, batches)
        rows.append({"items": X.shape[1], "interactions per user": round(X.nnz / X.shape[0], 1),
                     "items touched per batch": int(touched), "full ms": round(full, 1),
                     "sampled, Adam ms": round(dense, 1), "sampled, LazyAdam ms": round(lazy, 1),
                     "speed-up (LazyAdam)": f"{full / lazy:.2f}x"})
        print(rows[-1], flush=True)
    table = markdown(pd.DataFrame(rows), index=False)
    text = (f"# Mult-VAE update time, full vs sampled softmax\n\n{machine()}; float32 `tf.matmul` 2048³ in the same run: "
            f"{rate:.0f} GFLOP/s.\n\nBatches of {args.batch_size} users, {args.steps} updates timed, `[I-600-200-600-I]`, "
            f"2,048 negatives.\n\n{table}\n\n`python benchmarks/softmax_bench.py {shlex.join(argv or sys.argv[1:])}`\n")
    return emit(text, args.out)


if __name__ == "__main__":
    main()
