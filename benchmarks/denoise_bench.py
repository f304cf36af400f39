"""Denoising (issue #19): ``ImageSearch.denoise`` beside scikit-image's classical denoisers, PSNR on MNIST.

The MNIST test set is the only MNIST data here: its first 8,000 images train (the autoencoders
without labels; the classical methods' parameters are chosen on 300 of them), its last 2,000 are
scored. Noise: ``clip(clean + sigma * N(0, 1), 0, 1)``, what a noisy image file holds; one
fixed draw per sigma (``default_rng(sigma * 1000)``). PSNR against the clean image, data range 1,
averaged over images (the noisy input's own PSNR is the first row).

Anchors in the same run: ``skimage.restoration.denoise_tv_chambolle`` (weight chosen on the
training images) and ``denoise_nl_means`` (``h`` chosen the same way, ``sigma`` given, patch 5,
distance 6, fast mode). aerec: a ``conv-dae`` trained with ``noise="gaussian"`` at the sigma it
cleans (one model per sigma), early stopping on its validation share.

    AEREC_DATA_HOME=../shared/data python benchmarks/denoise_bench.py [--sigmas 0.3 0.5] [--epochs 30] \\
        [--out benchmarks/results/denoise_bench.md] [--plot benchmarks/results/denoise_bench.png]
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

TV_WEIGHTS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)
NLM_H = (0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0)  # multiples of sigma


def psnr(clean: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Per-image PSNR (dB, data range 1) of ``estimate`` against ``clean``, both (N, H, W)."""
    mse = ((clean - estimate) ** 2).reshape(len(clean), -1).mean(axis=1)
    return 10 * np.log10(1.0 / np.maximum(mse.astype(np.float64), 1e-12))


def noisy_copy(clean: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(int(round(sigma * 1000)))
    return np.clip(clean + sigma * rng.standard_normal(clean.shape), 0, 1).astype(np.float32)


def classical(method: str, noisy: np.ndarray, sigma: float, value: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    if method == "tv":
        return np.stack([denoise_tv_chambolle(x, weight=value) for x in noisy])
    return np.stack([denoise_nl_means(x, h=value * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                      fast_mode=True) for x in noisy])


def tuned(method: str, grid, tune_clean, tune_noisy, sigma: float) -> float:
    scores = {v: psnr(tune_clean, classical(method, tune_noisy, sigma, v)).mean() for v in grid}
    return max(scores, key=scores.get)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", nargs="+", type=float, default=[0.3, 0.5])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--code-dim", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="a PNG of clean / noisy / denoised examples")
    args = parser.parse_args(argv)

    images = aerec.datasets.mnist().images.astype(np.float32) / 255.0
    train, test = images[:args.n_train], images[-args.n_test:]
    tune_clean = train[:300]
    rows, examples = [], {}
    for sigma in args.sigmas:
        noisy = noisy_copy(test, sigma)
        tune_noisy = noisy_copy(tune_clean, sigma + 1e-3)  # another draw than the test images'
        row = {"sigma": sigma, "noisy input": float(psnr(test, noisy).mean())}
        seconds = {}
        for method, grid, label in (("tv", TV_WEIGHTS, "TV (Chambolle)"), ("nlm", NLM_H, "non-local means")):
            value = tuned(method, grid, tune_clean, tune_noisy, sigma)
            start = time.perf_counter()
            out = classical(method, noisy, sigma, value)
            seconds[label] = time.perf_counter() - start
            row[label] = float(psnr(test, out).mean())
            row[f"{label} chosen"] = value
            examples[(sigma, label)] = out[:6]
        model = aerec.ImageSearch(kind="conv-dae", noise="gaussian", noise_level=sigma, code_dim=args.code_dim,
                                  epochs=args.epochs, seed=0, verbose=0)
        start = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        out = model.denoise(noisy)[..., 0]
        seconds["aerec conv-dae"] = time.perf_counter() - start
        row["aerec conv-dae"] = float(psnr(test, out).mean())
        row["aerec epochs"] = len(model.history_["loss"])
        row["aerec fit s"] = fit_seconds
        examples[(sigma, "noisy")] = noisy[:6]
        examples[(sigma, "aerec conv-dae")] = out[:6]
        for label, s in seconds.items():
            row[f"{label} ms/image"] = 1e3 * s / len(test)
        rows.append(row)
        print(f"  sigma {sigma}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float)),
              file=sys.stderr, flush=True)

    frame = pd.DataFrame(rows)
    methods = ["noisy input", "TV (Chambolle)", "non-local means", "aerec conv-dae"]
    table = frame.set_index("sigma")[methods].T.round(2)
    table.columns = [f"PSNR dB, sigma {s}" for s in table.columns]
    times = frame.set_index("sigma")[[f"{m} ms/image" for m in methods[1:]]].T.round(3)
    times.index = methods[1:]
    times.columns = [f"ms / image, sigma {s}" for s in times.columns]
    chosen = "; ".join(f"sigma {r['sigma']}: TV weight {r['TV (Chambolle) chosen']}, NLM h = "
                       f"{r['non-local means chosen']} sigma, conv-dae {r['aerec epochs']} epochs in "
                       f"{r['aerec fit s']:.0f} s" for r in rows)
    text = "\n".join([
        f"Machine: {machine()}", "",
        f"Command: `python benchmarks/denoise_bench.py --sigmas {' '.join(map(str, args.sigmas))} --epochs "
        f"{args.epochs} --code-dim {args.code_dim}`", "",
        f"MNIST test set: first {args.n_train:,} images train, last {args.n_test:,} scored; noise "
        "clip(x + sigma N(0,1), 0, 1). Mean PSNR over the scored images (higher is better):", "",
        markdown(table.rename_axis("method")), "", markdown(times.rename_axis("method")), "",
        f"Chosen on 300 training images: {chosen}.", ""])
    if args.plot:
        plot(examples, test[:6], args.sigmas, args.plot)
        text += f"\nExamples: `{args.plot}`.\n"
    return emit(text, args.out)


def plot(examples: dict, clean: np.ndarray, sigmas, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["noisy", "TV (Chambolle)", "non-local means", "aerec conv-dae"]
    rows = [("clean", None)] + [(label, sigma) for sigma in sigmas for label in labels]
    fig, axes = plt.subplots(len(rows), len(clean), figsize=(1.3 * len(clean) + 1.6, 1.3 * len(rows)))
    for r, (label, sigma) in enumerate(rows):
        batch = clean if sigma is None else examples[(sigma, label)]
        for j in range(len(clean)):
            axes[r, j].imshow(batch[j], cmap="gray", vmin=0, vmax=1)
            axes[r, j].set_xticks([]), axes[r, j].set_yticks([])
        axes[r, 0].set_ylabel(label if sigma is None else f"{label}\nsigma {sigma}", fontsize=7, rotation=0,
                              ha="right", va="center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
