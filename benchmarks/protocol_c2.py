"""Protocol C2 (near-duplicate image retrieval, issue #19): recall@1 and @10 of finding a copy's source.

Everything comes from photos that the dependencies ship (nothing is downloaded), drawn with
``numpy.random.default_rng(seed)`` in this order:

- Photos: scikit-image's ``skimage.data`` astronaut, camera, chelsea, coffee, coins, hubble_deep_field,
  immunohistochemistry, moon, page, rocket, text, clock, brick, grass, gravel, horse, logo, colorwheel,
  retina, stereo_motorcycle (left view), those that load offline (the others are skipped and named),
  then scikit-learn's ``load_sample_images()`` china and flower. Each becomes RGB uint8 (greyscale
  repeated, masks to 0/255, transparency over white).
- Sources (``--sources``, default 500): source i is cut from photo ``i % len(photos)``: side
  s = U(0.2, 0.5) x the photo's short side, aspect (w / h) = U(0.8, 1.25), h = s / sqrt(aspect),
  w = s * sqrt(aspect), top-left uniform over the positions that fit; resized (Lanczos) to 64 x 64;
  drawn again (at most 20 times) while its pixels' standard deviation is below 12 of 255: a crop of
  black sky or blank paper has no source to be found by.
- Queries (``--copies`` per source, default 4): copy j of a source is of kind ``j % 4``, drawn after
  all sources, source by source:
  (a) crop: a square of U(0.7, 0.9) of the area at a uniform position, resized back (bicubic);
  (b) JPEG: recompressed by Pillow at quality U{15..35};
  (c) colour: with probability 0.25 greyscale back to RGB, else ``ImageEnhance`` brightness, contrast
      and saturation (in that order) each by a factor U(0.6, 1.4);
  (d) rescale: down to 32 x 32 (bilinear) and back up, then shifted by U{-4..4} pixels on each axis
      (edges repeated).
- Metric: recall@k = share of queries whose own source is among the k nearest of all sources, exact
  search, for k = 1 and 10; also recall@1 by augmentation kind.

Methods, all in one run: raw pixels (64x64x3 in [0, 1], cosine); PCA of raw pixels fitted on the
sources at ``--code-dim`` (at most the number of sources - 1), cosine; pHash and dHash (``imagehash``,
64 bits, Hamming distance, ties broken by source index); aerec ``ImageSearch`` kinds conv-ae,
conv-dae (default noise "shift"), conv-vae, and conv-dae with ``noise="augment"`` (a copy's changes as its
corruption, strength ``--augment-level``) at ``--code-dim``, trained for up to ``--epochs``
(early stopping on 10% of the sources, as ``ImageSearch`` does) on the sources only, the queries
encoded by the trained model and searched in its exact (flat) index of the sources. "fit s" is the
time to fit and index the sources, "query s" the time to encode and search all queries.

    AEREC_DATA_HOME=../shared/data python benchmarks/protocol_c2.py [--sources 500] [--copies 4]
        [--code-dim 64] [--epochs 30] [--seed 0] [--out benchmarks/results/protocol_c2.md]
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, markdown  # noqa: E402
from aerec.images import ImageSearch  # noqa: E402
from aerec.index import EmbeddingIndex  # noqa: E402

SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "hubble_deep_field", "immunohistochemistry",
                  "moon", "page", "rocket", "text", "clock", "brick", "grass", "gravel", "horse", "logo", "colorwheel",
                  "retina", "stereo_motorcycle")
KINDS = ("crop", "jpeg", "colour", "rescale")
SIZE = 64
#: a source whose pixels' standard deviation is below this (of 255) is featureless: drawn again, at most MAX_DRAWS times
MIN_STD, MAX_DRAWS = 12.0, 20


def rgb(array) -> np.ndarray:
    """Any shipped photo as an RGB uint8 array."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    image = Image.fromarray(array)
    if image.mode in ("RGBA", "LA"):
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image.convert("RGBA"), mask=image.convert("RGBA").split()[-1])
        image = white
    return np.asarray(image.convert("RGB"))


def load_photos() -> tuple[dict, dict]:
    """The photos that load without the network, by name, and the reasons the others did not."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos, failed = {}, {}
    for name in SKIMAGE_PHOTOS:
        try:
            photo = getattr(skimage.data, name)()
            photos[name] = rgb(photo[0] if isinstance(photo, tuple) else photo)  # stereo: the left view
        except Exception as error:  # noqa: BLE001 - a photo that needs a download, or is missing
            failed[name] = f"{type(error).__name__}: {str(error)[:80]}"
    samples = load_sample_images()
    for filename, photo in zip(samples.filenames, samples.images):
        photos[Path(filename).stem] = rgb(photo)
    return photos, failed


def make_sources(photos: list[np.ndarray], n: int, rng) -> np.ndarray:
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        for _ in range(MAX_DRAWS):  # a featureless crop (black sky, blank paper) is drawn again
            side, aspect = rng.uniform(0.2, 0.5) * min(height, width), rng.uniform(0.8, 1.25)
            h, w = min(height, round(side / np.sqrt(aspect))), min(width, round(side * np.sqrt(aspect)))
            top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            crop = Image.fromarray(photo[top:top + h, left:left + w])
            out[i] = np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.LANCZOS))
            if out[i].std() >= MIN_STD:
                break
    return out


def augment(source: np.ndarray, kind: str, rng) -> np.ndarray:
    image = Image.fromarray(source)
    if kind == "crop":
        side = round(SIZE * np.sqrt(rng.uniform(0.7, 0.9)))
        top, left = rng.integers(0, SIZE - side + 1, size=2)
        image = image.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    elif kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(15, 36)))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    elif kind == "colour":
        if rng.random() < 0.25:
            image = image.convert("L").convert("RGB")
        else:
            for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                image = enhancer(image).enhance(rng.uniform(0.6, 1.4))
    else:  # rescale to half and back, then a small shift with the edges repeated
        image = image.resize((SIZE // 2, SIZE // 2), Image.Resampling.BILINEAR).resize((SIZE, SIZE),
                                                                                       Image.Resampling.BILINEAR)
        dy, dx = rng.integers(-4, 5, size=2)
        padded = np.pad(np.asarray(image), ((4, 4), (4, 4), (0, 0)), mode="edge")
        return padded[4 - dy:4 - dy + SIZE, 4 - dx:4 - dx + SIZE].copy()
    return np.asarray(image)


def ranked(found: pd.DataFrame, n_queries: int, k: int) -> np.ndarray:
    """An index's answer as (n_queries, k) source positions, nearest first."""
    return found.sort_values(["query", "rank"])["id"].to_numpy(dtype=np.int64).reshape(n_queries, k)


def pca_basis(flat: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    mean = flat.mean(axis=0)
    return mean, np.linalg.svd(flat - mean, full_matrices=False)[2][:dim].T


def hamming_top(gallery_bits: np.ndarray, query_bits: np.ndarray, k: int) -> np.ndarray:
    g, q = gallery_bits.astype(np.int32), query_bits.astype(np.int32)
    distance = q @ (1 - g).T + (1 - q) @ g.T
    return np.argsort(distance, axis=1, kind="stable")[:, :k]  # stable: ties go to the lower source index


def hash_bits(images: np.ndarray, method) -> np.ndarray:
    return np.stack([method(Image.fromarray(image), hash_size=8).hash.ravel() for image in images])


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--code-dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment-level", type=float, default=0.15,
                        help="noise_level of the conv-dae trained with noise='augment'")
    parser.add_argument("--models", nargs="+", default=None,
                        help="aerec models to train (default: conv-ae conv-dae conv-vae and the augment conv-dae; "
                             "also 'conv-vae grey' and 'conv-ae grey', which read the images as greyscale)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.models = args.models or ["conv-ae", "conv-dae", "conv-vae", f"conv-dae augment {args.augment_level}"]

    import imagehash

    rng = np.random.default_rng(args.seed)
    photos, failed = load_photos()
    sources = make_sources(list(photos.values()), args.sources, rng)
    truth = np.repeat(np.arange(args.sources), args.copies)
    kinds = np.array([KINDS[j % len(KINDS)] for j in range(args.copies)] * args.sources)
    queries = np.stack([augment(sources[i], kind, rng) for i, kind in zip(truth, kinds)])

    rows, by_kind = [], {}

    def record(name, dim, top, fit_s, query_s):
        hit = top == truth[:, None]
        rows.append({"method": name, "dim": dim, "recall@1": round(float(hit[:, 0].mean()), 4),
                     "recall@10": round(float(hit.any(axis=1).mean()), 4), "fit s": round(fit_s, 2),
                     "query s": round(query_s, 2)})
        by_kind[name] = {kind: round(float(hit[kinds == kind, 0].mean()), 4) for kind in KINDS if (kinds == kind).any()}
        print(rows[-1], flush=True)

    def pixels(images):
        return images.reshape(len(images), -1).astype(np.float32) / 255

    def cosine(name, start, gallery, project):
        """Index the sources' vectors exactly (the fit ends there), then project and search the queries."""
        index = EmbeddingIndex(metric="cosine", kind="flat").build(gallery)
        fit_s, start = time.perf_counter() - start, time.perf_counter()
        top = ranked(index.search(project(pixels(queries)), k=10), len(queries), 10)
        record(name, gallery.shape[1], top, fit_s, time.perf_counter() - start)

    cosine("raw pixels", time.perf_counter(), pixels(sources), lambda flat: flat)
    start = time.perf_counter()
    dim = min(args.code_dim, len(sources) - 1)  # at most the rank of the centred sources
    mean, basis = pca_basis(pixels(sources), dim)
    cosine(f"PCA-{dim}", start, (pixels(sources) - mean) @ basis, lambda flat: (flat - mean) @ basis)

    for name, method in (("pHash", imagehash.phash), ("dHash", imagehash.dhash)):
        start = time.perf_counter()
        gallery, fit_s = hash_bits(sources, method), time.perf_counter() - start
        start = time.perf_counter()
        top = hamming_top(gallery, hash_bits(queries, method), 10)
        record(name, gallery.shape[1], top, fit_s, time.perf_counter() - start)

    models = {"conv-ae": {}, "conv-dae": {}, "conv-vae": {},
              f"conv-dae augment {args.augment_level}": {"kind": "conv-dae", "noise": "augment",
                                                          "noise_level": args.augment_level},
              "conv-vae grey": {"kind": "conv-vae", "channels": 1}, "conv-ae grey": {"kind": "conv-ae", "channels": 1}}
    for name in args.models:
        settings = {"kind": name, **models[name]}
        search = ImageSearch(code_dim=args.code_dim, epochs=args.epochs, index_kind="flat", seed=args.seed, verbose=0,
                             **settings).fit(sources)
        start = time.perf_counter()
        top = ranked(search.search(queries, k=10), len(queries), 10)
        record(f"{name} ({len(search.history_['loss'])} ep)", args.code_dim, top, search.fit_seconds_,
               time.perf_counter() - start)

    command = "python benchmarks/protocol_c2.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n".join([
        f"Machine: {machine()}",
        (f"Protocol C2 (seed {args.seed}): {len(sources)} sources (64x64 RGB crops), {len(queries)} queries "
         f"({args.copies} augmented copies each: {', '.join(KINDS)} in turn); exact search over all sources; "
         f"models: up to {args.epochs} epochs, early stopping on 10% of the sources"),
        f"Photos ({len(photos)}): {', '.join(photos)}",
        f"Not loaded offline: {', '.join(f'{k} ({v})' for k, v in failed.items()) or 'none'}",
        f"Command: `{command}`", "",
        markdown(pd.DataFrame(rows), index=False), "",
        "Recall@1 by augmentation:", "",
        markdown(pd.DataFrame(by_kind).T.rename_axis("method"))])
    return emit(text, args.out)


if __name__ == "__main__":
    main()
