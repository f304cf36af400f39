"""Image search: array and folder input, the three conv autoencoders, save/load, bad input."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import aerec
from aerec.data.images import DEFAULT_IMAGE_SIZE, MAX_OWN_SIZE, image_source, read_image, working_size
from aerec.exceptions import ConvertedImagesWarning, DataValidationError, DroppedRowsWarning
from aerec.images import ImageSearch


@pytest.fixture(scope="module")
def digits():
    """400 real MNIST digits of 0 and 1 (two very different shapes), 28 x 28 uint8."""
    data = aerec.datasets.mnist()
    keep = np.flatnonzero(np.isin(data.labels, [0, 1]))[:400]
    return data.images[keep], data.labels[keep]


def small(kind="conv-dae", **kw):
    return ImageSearch(kind=kind, code_dim=8, filters=(8, 16), epochs=kw.pop("epochs", 4), batch_size=64,
                       verbose=0, **kw)


@pytest.fixture(scope="module", params=["conv-ae", "conv-dae", "conv-vae"])
def fitted(request, digits):
    return small(request.param).fit(digits[0])


def test_codes_separate_two_digits(fitted, digits):
    images, labels = digits
    hits = fitted.similar(list(range(50)), k=5)
    precision = (labels[hits["id"].to_numpy()] == np.repeat(labels[:50], 5)).mean()
    assert precision > 0.9, precision  # 0s and 1s are easy; an untrained net is near 0.5


def test_search_frames_and_ids(fitted, digits):
    images, _ = digits
    out = fitted.search(images[:3], k=4)
    assert list(out.columns) == ["query", "id", "score", "rank"]
    assert out["query"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert out.groupby("query")["id"].first().tolist() == [0, 1, 2]  # an indexed image finds itself first
    codes = fitted.codes(images[:5], ids=list("abcde"))
    assert codes.index.tolist() == list("abcde") and codes.shape == (5, 8)


def test_save_load_same_codes_and_results(tmp_path, fitted, digits):
    images, _ = digits
    fitted.save(tmp_path / "b")
    same = aerec.load(tmp_path / "b")
    np.testing.assert_array_equal(same.codes(images[:20]).to_numpy(), fitted.codes(images[:20]).to_numpy())
    pd.testing.assert_frame_equal(same.search(images[:5], k=3), fitted.search(images[:5], k=3))
    assert same.get_params() == fitted.get_params()
    assert fitted.folder_ is None and same.folder_ is None  # fitted on an array: no folder behind the ids


def test_add_without_retraining(digits):
    images, _ = digits
    search = small("conv-ae", epochs=1).fit(images[:300])
    search.add(images[300:310], ids=[f"new{i}" for i in range(10)])
    assert len(search.index_) == 310
    assert search.search(images[305:306], k=1)["id"].tolist() == ["new5"]


def test_same_seed_same_codes(digits):
    images, _ = digits
    a = small("conv-dae", epochs=1).fit(images[:200]).codes(images[:10])
    b = small("conv-dae", epochs=1).fit(images[:200]).codes(images[:10])
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_denoising_noise_only_in_training(digits):
    from aerec.models.conv_ae import ConvAutoencoder

    x = digits[0][:8, :, :, None].astype("float32") / 255
    net = ConvAutoencoder((28, 28, 1), 4, (8,), noise="masking", noise_level=0.5)
    corrupted = np.asarray(net.corrupt(x))
    assert 0.3 < (corrupted[x > 0] == 0).mean() < 0.7
    np.testing.assert_array_equal(np.asarray(net(x, training=False)), np.asarray(net(x, training=False)))


def test_vae_adds_its_kl_term(digits):
    from aerec.models.conv_vae import ConvVAE

    x = digits[0][:8, :, :, None].astype("float32") / 255
    net = ConvVAE((28, 28, 1), 4, (8,), beta=1.0)
    net(x, training=True)
    assert len(net.losses) == 1 and float(net.losses[0]) > 0


def write_folder(root, digits, n=40, mode="L"):
    images, _ = digits
    for i in range(n):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).convert(mode).save(sub / f"img{i:03d}.png")


def test_folder_streams_and_names_corrupt_files(tmp_path, digits):
    write_folder(tmp_path / "imgs", digits)
    (tmp_path / "imgs" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image, not looked at")
    with pytest.warns(DroppedRowsWarning, match=r"skipped 1 of 41 image file\(s\).*broken\.png"):
        search = small("conv-ae", epochs=1).fit(tmp_path / "imgs")
    assert len(search.index_) == 40 and search.skipped_[0][0].endswith("broken.png")
    assert "a/img001.png" in set(search.similar(["a/img001.png"], k=39)["query"])
    assert search.folder_ == str((tmp_path / "imgs").resolve())  # where the ids point: aerec serve's thumbnails
    search.save(tmp_path / "b")
    assert aerec.load(tmp_path / "b").folder_ == search.folder_
    with pytest.raises(DataValidationError, match=r"broken\.png: cannot read it as an image"):
        small("conv-ae", epochs=1).fit(tmp_path / "imgs", on_error="raise")


def test_folder_resizes_any_size(tmp_path, digits):
    images, _ = digits
    for i in range(12):
        Image.fromarray(images[i]).resize((30 + i % 3, 30)).save(tmp_path / f"{i}.png")
    source = image_source(tmp_path)  # mixed sizes: the default working size, whatever size is the most common
    assert source.shape == (*DEFAULT_IMAGE_SIZE, 1) and "mixed sizes (from 30x30 to 30x32)" in source.why
    batch = next(source.batches(12))
    assert batch.shape == (12, *DEFAULT_IMAGE_SIZE, 1) and 0 <= batch.min() and batch.max() <= 1
    assert image_source(tmp_path, image_size=(30, 30)).shape == (30, 30, 1)


def test_working_size_policy_and_aspect(tmp_path):
    # a few thumbnails among photos do not make the index 8x8, and photos do not train at their own size
    photo = np.zeros((240, 400, 3), np.uint8)
    photo[:, 80:320] = 255  # a white square band in the middle of a wide black photo
    for i in range(3):
        Image.fromarray(photo).save(tmp_path / f"photo{i}.jpg", quality=95)
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(tmp_path / "thumb.png")
    source = image_source(tmp_path)
    assert source.shape == (*DEFAULT_IMAGE_SIZE, 3) and "from 8x8 to 240x400" in source.why
    assert working_size([(200, 200)] * 3) == (DEFAULT_IMAGE_SIZE, f"the default for images larger than "
                                                                  f"{MAX_OWN_SIZE} pixels a side (200x200)")
    # crop keeps the centre (all white), pad fits the whole photo (black bars above and below), stretch squeezes
    crop, pad, stretch = (read_image(tmp_path / "photo0.jpg", (60, 60, 3), a) for a in ("crop", "pad", "stretch"))
    assert crop.min() > 0.9
    assert pad[:10].max() < 0.1 and pad[30, 30].min() > 0.9 and pad[30, :5].max() < 0.1
    assert stretch[:, :5].max() < 0.1 and stretch[:, 30].min() > 0.9
    with pytest.raises(ValueError, match="aspect must be one of"):
        image_source(tmp_path, aspect="zoom")


def test_empty_folder_and_mixed_channels(tmp_path, digits):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="no readable PNG or JPEG image"):
        image_source(tmp_path / "empty")
    write_folder(tmp_path / "mixed", digits, n=4)
    (tmp_path / "mixed" / "sub").mkdir()
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(tmp_path / "mixed" / "sub" / "colour.png")
    # greyscale and colour mixed: converted to the majority's channels, counted, the file named with its subfolder
    with pytest.warns(ConvertedImagesWarning, match=r"converted 1 of 5 image\(s\) to greyscale.*e\.g\. sub/colour\.png"):
        assert image_source(tmp_path / "mixed").shape == (28, 28, 1)
    assert image_source(tmp_path / "mixed", channels=3).shape == (28, 28, 3)


def test_bad_arrays_and_queries(fitted):
    with pytest.raises(DataValidationError, match=r"shape \(N, H, W\) or \(N, H, W, C\).*got shape \(3, 28, 28, 2\)"):
        image_source(np.zeros((3, 28, 28, 2)))
    with pytest.raises(DataValidationError, match=r"images \[1\] contain NaN"):
        image_source(np.stack([np.zeros((4, 4)), np.full((4, 4), np.nan)]))
    with pytest.raises(DataValidationError, match=r"must be in \[0, 1\]"):
        image_source(np.full((2, 4, 4), 7.0))
    with pytest.raises(DataValidationError, match=r"query images have 2 channels \(shape \(2, 28, 28, 2\)\)"):
        fitted.search(np.zeros((2, 28, 28, 2), np.uint8), k=1)
    # colour queries of a greyscale index are converted, as its folder's files would be
    assert fitted.search(np.zeros((2, 28, 28, 3), np.uint8), k=1)["query"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="kind must be one of"):
        ImageSearch(kind="resnet").fit(np.zeros((4, 8, 8), np.uint8))


def test_plots_draw(fitted, digits):
    from aerec import plots

    images, labels = digits
    figs = [plots.reconstructions(images[:6], fitted.reconstruct(images[:6])),
            plots.query_results(images, fitted.search(images[:3], k=4), lambda i: images[i], labels=lambda i: labels[i]),
            plots.code_map(fitted.codes(images[:100]).to_numpy(), labels[:100]),
            plots.training_curves(fitted.history_)]
    for fig in figs:
        assert fig.axes
    assert len(figs[1].axes) == 3 * 5


def test_cli_images_fit_and_search(tmp_path, digits):
    from typer.testing import CliRunner

    from aerec.cli import app

    write_folder(tmp_path / "imgs", digits, n=30)
    runner = CliRunner()
    result = runner.invoke(app, ["images", "fit", str(tmp_path / "imgs"), "--out", str(tmp_path / "b"),
                                 "--code-dim", "8", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "indexed 30 images (0 skipped)" in result.output
    result = runner.invoke(app, ["images", "search", str(tmp_path / "b"), str(tmp_path / "imgs" / "a" / "img001.png"),
                                 "--k", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "query,id,score,rank" and lines[1].split(",")[1] == "a/img001.png"  # finds itself first
    result = runner.invoke(app, ["images", "search", str(tmp_path / "b"), str(tmp_path / "nope.png")])
    assert result.exit_code == 1 and "nope.png" in result.output
    # the working size and the channels from the command line, and the choice said
    result = runner.invoke(app, ["images", "fit", str(tmp_path / "imgs"), "--out", str(tmp_path / "c"), "--code-dim", "4",
                                 "--epochs", "1", "--image-size", "16x20", "--channels", "3", "--aspect", "pad"])
    assert result.exit_code == 0, result.output
    assert "working size 16x20x3: as asked (image_size); aspect kept by padding" in result.output
    assert aerec.load(tmp_path / "c").image_shape_ == (16, 20, 3)
    result = runner.invoke(app, ["images", "fit", str(tmp_path / "imgs"), "--out", str(tmp_path / "d"),
                                 "--image-size", "big"])
    assert result.exit_code == 1 and "--image-size takes HEIGHTxWIDTH or one number" in result.output


def _bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG file whose header declares a huge image (Pillow refuses it as a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_a_decompression_bomb_in_a_folder_is_skipped_or_named(tmp_path, digits):
    images, _ = digits
    (tmp_path / "sub").mkdir()
    for n in range(3):
        Image.fromarray(images[n]).save(tmp_path / f"d{n}.png")
    (tmp_path / "sub" / "bomb.png").write_bytes(_bomb_png())
    with pytest.warns(DroppedRowsWarning, match=r"skipped 1 of 4 .*sub/bomb\.png \(DecompressionBombError"):
        source = image_source(tmp_path)
    assert len(source) == 3
    with pytest.raises(DataValidationError, match=r"sub/bomb\.png: cannot read it as an image \(DecompressionBombError"):
        image_source(tmp_path, on_error="raise")


def test_queries_mean_what_a_person_means(tmp_path, fitted, digits):
    images, _ = digits
    path = tmp_path / "q.png"
    Image.fromarray(images[0]).save(path)
    Image.fromarray(images[1]).save(tmp_path / "r.png")
    expected = fitted.search(images[:1], k=3)["id"].tolist()
    assert fitted.search(path, k=3)["id"].tolist() == expected  # a file is one image
    assert fitted.search(str(path), k=3)["query"].tolist() == [str(path)] * 3
    assert fitted.search(path.read_bytes(), k=3)["id"].tolist() == expected  # the file's bytes
    with Image.open(path) as img:
        assert fitted.search(img, k=3)["id"].tolist() == expected  # a PIL image, left open for the caller
        img.load()
    assert fitted.search(images[0], k=3)["id"].tolist() == expected  # one (H, W) array
    assert fitted.search(images[0][..., None], k=3)["id"].tolist() == expected  # one (H, W, 1) array
    assert fitted.search(images[:2], k=1)["query"].tolist() == [0, 1]  # (N, H, W): N images
    both = fitted.search([path, tmp_path / "r.png"], k=1)
    assert both["query"].tolist() == [str(path), str(tmp_path / "r.png")]
    with pytest.raises(FileNotFoundError, match="q2.png: no such image file or folder"):
        fitted.search(tmp_path / "q2.png", k=1)
    (tmp_path / "bomb.png").write_bytes(_bomb_png())
    with pytest.raises(DataValidationError, match=r"bomb\.png: not a decodable image \(DecompressionBombError"):
        fitted.search(tmp_path / "bomb.png", k=1)


PEAK_OF_A_FIT = """
import resource, sys
from aerec.images import ImageSearch
ImageSearch(kind="conv-ae", code_dim=8, filters=(8,), image_size=(256, 256), epochs=1, batch_size=16,
            verbose=0).fit(sys.argv[1])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # MiB
"""


@pytest.mark.slow  # two fits of a few hundred 256x256 images in fresh processes: 2-4 minutes
def test_training_memory_follows_the_batch_not_the_folder(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 256, dtype=np.float32)
    sizes = (160, 640)
    for n in sizes:
        folder = tmp_path / f"n{n}"
        folder.mkdir()
        for i in range(n):  # smooth colour images: quick to write and read, 0.75 MiB each as float32 at 256x256
            image = (ramp[None, :, None] * rng.random(3) + ramp[:, None, None] * rng.random(3)) / 2
            Image.fromarray(image.astype(np.uint8)).save(folder / f"{i}.png", compress_level=1)
    peaks = {}
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", PEAK_OF_A_FIT, str(tmp_path / f"n{n}")], capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        peaks[n] = int(out.stdout.split()[-1])
    # 480 more images would hold 360 MiB more as float32 if the folder were loaded (the encoder read 256 images
    # at a time before: +177 MiB from 40 to 320 images); streamed, what remains is the allocators' warm-up
    # (measured here: +84 MiB from 160 to 640, +18 from 320 to 640)
    assert peaks[sizes[1]] - peaks[sizes[0]] < 120, peaks


def test_denoise_removes_the_noise_it_was_trained_on(digits):
    images = digits[0].astype("float32") / 255
    clean = images[300:]
    noisy = np.clip(clean + 0.5 * np.random.default_rng(1).standard_normal(clean.shape), 0, 1).astype("float32")
    model = small(noise="gaussian", noise_level=0.5, epochs=8).fit(images[:300])
    out = model.denoise(noisy)
    assert out.shape == (len(clean), 28, 28, 1) and out.dtype == np.float32

    def psnr(estimate):
        return float(np.mean(10 * np.log10(1 / ((clean - estimate) ** 2).mean(axis=(1, 2)))))

    assert psnr(out[..., 0]) > psnr(noisy) + 2  # noisy input 9.4 dB, denoised 11.6 (a tiny model, 8 epochs)
    np.testing.assert_array_equal(out, model.reconstruct(noisy))
    np.testing.assert_allclose(model.denoise(noisy[0])[0], out[0], atol=1e-5)  # one (H, W) image as a person passes it


def test_augment_corruption_changes_training_inputs_only(digits):
    from aerec.models.conv_ae import ConvAutoencoder

    x = np.random.default_rng(0).random((4, 16, 16, 3)).astype("float32")
    net = ConvAutoencoder((16, 16, 3), 4, (8,), noise="augment", noise_level=0.15, seed=0)
    corrupted = np.asarray(net.corrupt(x))
    assert corrupted.shape == x.shape and 0 <= corrupted.min() and corrupted.max() <= 1
    assert np.abs(corrupted - x).mean() > 0.05
    np.testing.assert_array_equal(np.asarray(net(x, training=False)), np.asarray(net(x, training=False)))
    grey = small(noise="augment", noise_level=0.15, epochs=1).fit(digits[0][:64])  # one channel: no colour layers
    assert grey.codes(digits[0][:2]).shape == (2, 8)
