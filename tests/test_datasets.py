"""Dataset loaders, including the real download path against a local HTTP server on 127.0.0.1."""
import functools
import http.server
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from aerec import datasets
from aerec.exceptions import ChecksumError


@pytest.fixture
def shared_ml100k(ml100k) -> Path:
    """The local ML-100K files (from $AEREC_DATA_HOME), resolved before a test changes the environment."""
    return ml100k.path


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www over HTTP on a free loopback port; yields the base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No AEREC_DATA_HOME, an empty cache: the loader must download."""
    monkeypatch.delenv("AEREC_DATA_HOME", raising=False)
    monkeypatch.setenv("AEREC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_zip(source: Path, target: Path, corrupt: str | None = None) -> None:
    with zipfile.ZipFile(target, "w") as zf:
        for file in sorted(source.iterdir()):
            data = file.read_bytes()
            if file.name == corrupt:
                data = data[:-10] + b"0000000000"
            zf.writestr(f"ml-100k/{file.name}", data)


def test_movielens_frames(ml100k):
    assert ml100k.ratings.shape == (100000, 4) and list(ml100k.ratings.columns) == ["user", "item", "rating", "timestamp"]
    assert ml100k.ratings["rating"].between(1, 5).all()
    items = ml100k.items.set_index("item")
    assert items.shape[0] == 1682
    assert items.loc[1, "title"] == "Toy Story (1995)" and items.loc[1, "genres"] == "Animation|Children's|Comedy"
    # u.item is latin-1: accented titles must decode, not turn into replacement characters
    assert any("é" in t for t in items["title"]) and not any("\ufffd" in t for t in items["title"])
    assert str(items.loc[1, "release_date"].date()) == "1995-01-01"
    assert ml100k.users.shape == (943, 5) and ml100k.users["zip_code"].dtype != np.int64
    base, test = ml100k.fold(1)
    assert (len(base), len(test)) == (80000, 20000)


def test_download_checks_and_caches(shared_ml100k, server, isolated):
    root, url = server
    make_zip(shared_ml100k, root / "ml-100k.zip")
    ml = datasets.movielens_100k(url=f"{url}/ml-100k.zip")
    assert ml.path == isolated / "ml-100k" and ml.ratings.shape == (100000, 4)
    assert not [p for p in isolated.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    (root / "ml-100k.zip").unlink()  # the cache now answers without the network
    assert datasets.movielens_100k(url=f"{url}/ml-100k.zip").ratings.equals(ml.ratings)


def test_corrupted_download_leaves_nothing(shared_ml100k, server, isolated):
    root, url = server
    make_zip(shared_ml100k, root / "ml-100k.zip", corrupt="u.item")
    with pytest.raises(ChecksumError, match=r"wrong SHA-256: \['u.item'\]; nothing was cached"):
        datasets.movielens_100k(url=f"{url}/ml-100k.zip")
    assert not isolated.exists()  # nothing cached, not even an empty folder


def test_download_that_is_not_a_zip(server, isolated):
    root, url = server
    (root / "ml-100k.zip").write_text("<html>not found</html>")
    with pytest.raises(ChecksumError, match="not a valid zip archive"):
        datasets.movielens_100k(url=f"{url}/ml-100k.zip")
    assert not isolated.exists()  # nothing cached, not even an empty folder


def test_no_files_and_no_download(isolated):
    with pytest.raises(FileNotFoundError, match="download=False"):
        datasets.movielens_100k(download=False)


def test_corrupt_local_copy_is_named(monkeypatch, tmp_path, shared_ml100k):
    copy = tmp_path / "home" / "ml-100k"
    copy.mkdir(parents=True)
    for file in shared_ml100k.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    with open(copy / "u.data", "ab") as fh:
        fh.write(b"1\t1\t5\t0\n")
    monkeypatch.setenv("AEREC_DATA_HOME", str(tmp_path / "home"))
    with pytest.raises(ChecksumError, match=r"u\.data: SHA-256 is .* expected"):
        datasets.movielens_100k(download=False)


def test_mnist_test_set():
    data = datasets.mnist(download=False)
    assert data.images.shape == (10000, 28, 28) and data.images.dtype == np.uint8
    assert data.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(data.labels).tolist()[:2] == [980, 1135]


def test_mnist_download_from_a_local_mirror(server, tmp_path):
    root, url = server
    repo_copy = Path(datasets.__file__).resolve().parent.parent / "data" / "mnist"
    for name in datasets.MNIST_SHA256:
        (root / name).write_bytes((repo_copy / name).read_bytes())
    target = datasets._download_mnist(url, tmp_path / "mnist")
    assert sorted(p.name for p in target.iterdir()) == sorted(datasets.MNIST_SHA256)
    # a corrupted file is refused and never takes its final name
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(ChecksumError, match=r"/t10k-labels-idx1-ubyte.gz \(nothing was cached\): SHA-256"):
        datasets._download_mnist(url, tmp_path / "other")
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["t10k-images-idx3-ubyte.gz"]


def test_unreachable_download_says_what_and_how_to_work_offline(isolated):
    from aerec.exceptions import DownloadError

    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on: refused at once, no internet needed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ml-100k.zip"
    with pytest.raises(DownloadError, match=rf"could not download MovieLens-100K from {url} .*AEREC_DATA_HOME.*ml-100k/"):
        datasets.movielens_100k(url=url)
    assert not isolated.exists()  # no empty cache folder left behind


def test_synthetic_interactions_are_deterministic_skewed_and_clustered():
    first = datasets.synthetic_interactions(2_000, 500, 30_000, seed=3, n_clusters=10)
    again = datasets.synthetic_interactions(2_000, 500, 30_000, seed=3, n_clusters=10)
    assert first.equals(again) and not first.equals(datasets.synthetic_interactions(2_000, 500, 30_000, seed=4))
    assert list(first.columns) == ["user", "item"] and not first.duplicated().any()
    assert 20_000 < len(first) <= 30_000 and first["user"].nunique() == 2_000
    counts = first["item"].value_counts()
    assert counts.iloc[:5].sum() / len(first) > 0.1  # the head of a Zipf catalogue (uniform: 1%)
    per_user = first.groupby("user").size()
    assert per_user.max() > 10 * per_user.median()  # log-normal activity: a long tail of heavy users
    # tastes: two users of the same taste share more items than two users picked at random
    import itertools

    sets = first.groupby("user")["item"].agg(set)
    heavy = per_user[per_user >= 20].index[:60]
    overlaps = [len(sets[a] & sets[b]) / min(len(sets[a]), len(sets[b])) for a, b in itertools.combinations(heavy, 2)]
    assert max(overlaps) > 3 * np.median(overlaps)
