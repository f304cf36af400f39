"""Seconds per training epoch on protocol A1 seed 0, and the FLOP/s they imply beside the machine's
own float32 matrix-multiply rate measured in the same run.

Each model is fitted with its defaults (no validation, so no early stopping and nothing but training
inside the epoch clock) for ``--epochs`` epochs; the figure is the median of the epochs after the
first (which traces the graph). FLOPs are counted for the dense matrix products only (2·m·n·k
each): a trained layer costs its forward product, its weight gradient and, except the first layer,
its input gradient; a frozen layer (RecVAE's prior encoder, the decoder in the encoder's passes)
costs what it is used for. Softmax, normalisation and the sparse-to-dense input are left out, so
the FLOP/s is a lower bound on the work done.

The matrix-multiply baseline is ``tf.matmul`` on float32 at the shape of the models' first layer
(a batch of 500 users x all items times items x 600) and at 2048³, median of repeated runs.

    AEREC_DATA_HOME=../shared/data python benchmarks/epoch_bench.py [--models MultVAE MultDAE CDAE RecVAE] [--out benchmarks/results/epoch_bench.md]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aerec  # noqa: E402
from _common import emit, machine, markdown, matmul_rate  # noqa: E402

#: name -> (estimator, epochs to time by default)
MODELS = {
    "MultVAE": (lambda: aerec.MultVAE(seed=0), 200),
    "MultDAE": (lambda: aerec.MultDAE(seed=0), 200),
    "CDAE": (lambda: aerec.CDAE(seed=0), 200),
    "RecVAE": (lambda: aerec.RecVAE(seed=0), 50),
}


def _dense(layer) -> int:
    """FLOPs of one row through a dense layer's matrix product."""
    rows, cols = layer.kernel.shape
    return 2 * int(rows) * int(cols)


def _trained(layers) -> int:
    """Forward, weight gradient and (except the first layer) input gradient of a stack, per row."""
    forward = [_dense(layer) for layer in layers]
    return 3 * sum(forward) - forward[0]


def flops_per_epoch(model) -> int:
    """Dense matrix-product FLOPs of one training epoch of a fitted model."""
    net, n_users = model.network_, model.interactions_.shape[0]
    if isinstance(model, (aerec.MultVAE, aerec.MultDAE)):
        stack = [net.encoder_hidden, net.encoder_code, net.decoder_hidden, net.output_layer]
        return n_users * _trained([layer for layer in stack if layer is not None])
    if isinstance(model, aerec.CDAE):
        return n_users * _trained([net.encoder, net.output_layer])
    if isinstance(model, aerec.RecVAE):
        enc = net.encoder
        layers = [*enc.hidden, enc.mean_layer, enc.log_var_layer]
        encoder_forward = sum(_dense(layer) for layer in layers)
        decoder = _dense(net.output_layer)
        # encoder passes: train the encoder, run the prior's copy, backpropagate through the decoder
        encoder_pass = (3 * encoder_forward - _dense(enc.hidden[0])) + encoder_forward + 2 * decoder
        # decoder passes: run the encoder, train the decoder
        decoder_pass = encoder_forward + 2 * decoder
        return n_users * (net.encoder_epochs * encoder_pass + net.decoder_epochs * decoder_pass)
    raise TypeError(f"no FLOP count for {type(model).__name__}")


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=None, help="epochs per model (default: 200; RecVAE 50)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", aerec.exceptions.UnknownIdsWarning)

    train = aerec.evaluate.load_protocol_a("weak", 0)["train"]
    n_items = train["item"].nunique()
    rates = {
        f"tf.matmul 500x{n_items} @ {n_items}x600": matmul_rate(500, n_items, 600, repeats=30),
        "tf.matmul 2048³": matmul_rate(2048, 2048, 2048, repeats=10),
    }
    rows = {}
    for name in args.models:
        make, default_epochs = MODELS[name]
        model = make().set_params(epochs=args.epochs or default_epochs, patience=None)
        model.fit(train)
        seconds = statistics.median(model.history_["train_seconds"][1:])
        flops = flops_per_epoch(model)
        rows[name] = {
            "epochs timed": len(model.history_["train_seconds"]) - 1,
            "updates / epoch": model._steps_per_epoch(-(-model.interactions_.shape[0] // model.batch_size)),
            "s / epoch (median)": f"{seconds:.4f}",
            "GFLOP / epoch": f"{flops / 1e9:.2f}",
            "GFLOP/s": f"{flops / seconds / 1e9:.1f}",
            "% of first-layer matmul rate": f"{100 * flops / seconds / 1e9 / next(iter(rates.values())):.0f}%",
        }
    table = pd.DataFrame(rows).T.rename_axis("model")
    baseline = pd.DataFrame({"GFLOP/s": {k: f"{v:.1f}" for k, v in rates.items()}}).rename_axis("float32 matmul")
    users, items = train["user"].nunique(), n_items
    text = "\n".join([
        f"Machine: {machine()}",
        f"A1 seed 0 train: {users} users x {items} items, {len(train)} interactions; defaults of each model.",
        "",
        markdown(table),
        "",
        "Measured in the same run:",
        "",
        markdown(baseline),
        "",
    ])
    return emit(text, args.out)


if __name__ == "__main__":
    main()
