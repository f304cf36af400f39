"""EASE fit time and memory on a synthetic catalogue, beside the machine's own ``tf.matmul`` rate.

Synthetic implicit interactions: ``--interactions`` (user, item) draws over ``--users`` users and
``--items`` items, item popularity Zipf-like (exponent ``--zipf``), duplicates dropped, and every
item drawn at least once so the catalogue has exactly ``--items`` items. EASE (``aerec.EASE``) is
fitted once through the public estimator: the Gram matrix, the dense item x item solve and the
flat FAISS index over the item codes that every ``fit`` builds.

The defaults are a MovieLens-20M-sized problem (138,000 users, 20,000 items, 10M interactions):
roughly 13 GiB of memory at the peak and 5-10 minutes on 2 cores (extrapolated from the 8,000-item
run: the fit peaks at about 7.4 float32 item x item matrices). Smaller runs, e.g.::

    python benchmarks/ease_bench.py --users 20000 --items 8000 --interactions 1000000 [--out benchmarks/results/ease_bench.md]

The baseline is float32 ``tf.matmul`` at 2048³ (median of repeats), measured in the same run before
the fit (so TensorFlow is already imported and its import time is not in the fit). The solve's
FLOPs are counted as Cholesky n³/3 + triangular solve against the identity n³ + the product
L⁻ᵀL⁻¹ 2n³; the Gram matrix, the scaling and the index are left out, so its GFLOP/s is a lower bound.
Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process's peak, data included); where
Linux allows resetting it (``/proc/self/clear_refs``), the peak during the fit alone is shown too.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aerec  # noqa: E402
from _common import emit, machine, markdown, matmul_rate, reset_peak, rss_peak, vm  # noqa: E402
from aerec.models.ease import ease_memory_bytes  # noqa: E402

GIB = 2**30


def interactions(n_users: int, n_items: int, n_interactions: int, zipf: float, seed: int) -> pd.DataFrame:
    """Distinct (user, item) pairs: uniform users, Zipf-like item popularity, every item present."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** zipf
    items = rng.choice(n_items, size=n_interactions, p=weights / weights.sum())
    items[:n_items] = rng.permutation(n_items)  # every item is in the catalogue
    users = rng.integers(0, n_users, size=n_interactions)
    return pd.DataFrame({"user": users, "item": items}).drop_duplicates(ignore_index=True)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=138_000)
    parser.add_argument("--interactions", type=int, default=10_000_000, help="draws before duplicates are dropped")
    parser.add_argument("--zipf", type=float, default=1.0, help="item popularity exponent (0: uniform)")
    parser.add_argument("--l2", type=float, default=500.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this markdown file")
    args = parser.parse_args(argv)
    if args.interactions < args.items:
        parser.error("--interactions must be at least --items (every item is drawn once)")

    command = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *(sys.argv[1:] if argv is None else argv)])
    df = interactions(args.users, args.items, args.interactions, args.zipf, args.seed)
    rate = matmul_rate()  # imports TensorFlow, so the fit below does not pay for it

    rss_before = vm("VmRSS")
    peak_before = rss_peak()
    resettable = reset_peak()
    start = time.perf_counter()
    model = aerec.EASE(l2=args.l2).fit(df)
    seconds = time.perf_counter() - start
    peak_after = rss_peak()
    fit_peak = vm("VmHWM") if resettable else None

    n = model.B_.shape[0]
    solve_flops = (1 / 3 + 1 + 2) * n**3
    row = {
        "users": f"{df['user'].nunique():,}",
        "items": f"{n:,}",
        "interactions": f"{len(df):,}",
        "fit s": f"{seconds:.1f}",
        "solve GFLOP": f"{solve_flops / 1e9:.0f}",
        "GFLOP/s (lower bound)": f"{solve_flops / seconds / 1e9:.1f}",
        "% of matmul rate": f"{100 * solve_flops / seconds / 1e9 / rate:.0f}%",
        "peak RSS GiB (ru_maxrss)": f"{peak_after / GIB:.2f}",
        "RSS before fit GiB": f"{rss_before / GIB:.2f}" if rss_before is not None else "n/a",
        "peak during fit GiB": f"{fit_peak / GIB:.2f}" if fit_peak is not None else "n/a",
        "ease_memory_bytes GiB": f"{ease_memory_bytes(n) / GIB:.2f}",
    }
    table = pd.DataFrame([row]).T.rename_axis("EASE fit").rename(columns={0: f"l2={args.l2:g}"})
    baseline = pd.DataFrame({"GFLOP/s": {"tf.matmul float32 2048³": f"{rate:.1f}"}}).rename_axis("measured in the same run")
    threads = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
               if k in os.environ}
    text = "\n".join([
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}",
        (f"Thread settings in the environment: {threads or 'none'}; peak RSS before the fit (data, TensorFlow): "
         f"{peak_before / GIB:.2f} GiB"),
        "",
        markdown(table),
        "",
        markdown(baseline),
        "",
    ])
    return emit(text, args.out)


if __name__ == "__main__":
    main()
