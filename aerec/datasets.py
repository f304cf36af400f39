"""Public datasets: MovieLens-100K (downloaded, checksummed, cached) and the MNIST test set.

MovieLens-100K may not be redistributed (GroupLens' terms), so aerec never ships it. The
loader looks in ``$AEREC_DATA_HOME/ml-100k/``, then in the cache directory
(``$AEREC_CACHE_DIR``, default ``~/.cache/aerec``), and otherwise downloads the GroupLens
zip, checks the SHA-256 of every file in it and unpacks it into the cache. A download whose
files do not match leaves nothing in the cache.

The MNIST test set (CC BY-SA 3.0) is in the repository's ``data/mnist/``.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .exceptions import ChecksumError, DataValidationError, DownloadError
from .utils import sha256_of

__all__ = ["movielens_100k", "MovieLens100K", "mnist", "MNIST", "synthetic_interactions", "data_home", "cache_dir"]

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"

# SHA-256 of the GroupLens files aerec reads (the zip's other files are not checked).
ML100K_SHA256 = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
}
MNIST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "1488b2253c7678056ecec4d0a5964be6cf8cf6dc6411b21a48d77a497fefe2be",
    "t10k-labels-idx1-ubyte.gz": "daa0ca80179b076764a51a527b4850de26f321125e4d2d55cf279fff0a4b4c4d",
}
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


def data_home() -> Path | None:
    """``$AEREC_DATA_HOME`` as a path, or None when it is not set."""
    value = os.environ.get("AEREC_DATA_HOME")
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    """Where downloads are kept: ``$AEREC_CACHE_DIR``, else ``$XDG_CACHE_HOME/aerec``, else ``~/.cache/aerec``."""
    if os.environ.get("AEREC_CACHE_DIR"):
        return Path(os.environ["AEREC_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aerec"



def _verify(path: Path, expected: str, label=None) -> None:
    got = sha256_of(path)
    if got != expected:
        raise ChecksumError(
            f"{label or path}: SHA-256 is {got}, expected {expected}; the file is corrupt or not the original"
        )


# --- MovieLens-100K ----------------------------------------------------------------


@dataclass(frozen=True)
class MovieLens100K:
    """MovieLens-100K as DataFrames.

    Attributes
    ----------
    ratings : DataFrame
        ``user, item, rating, timestamp`` (100,000 rows).
    items : DataFrame
        ``item, title, release_date, imdb_url, genres`` (genres joined by ``|``).
    users : DataFrame
        ``user, age, gender, occupation, zip_code``.
    path : Path
        The directory the files were read from.
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    path: Path

    def fold(self, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The canonical GroupLens fold ``u{k}.base`` / ``u{k}.test`` (k = 1..5) as ``user, item, rating, timestamp``."""
        if k not in range(1, 6):
            raise ValueError(f"k must be 1..5, got {k!r}")
        return _read_ratings(self.path, f"u{k}.base"), _read_ratings(self.path, f"u{k}.test")


def _find_ml100k(download: bool, url: str | None) -> Path:
    home = data_home()
    candidates = ([home / "ml-100k"] if home else []) + [cache_dir() / "ml-100k"]
    for directory in candidates:
        if (directory / "u.data").is_file():
            return directory
    if not download:
        raise FileNotFoundError(
            f"MovieLens-100K is not in {[str(c) for c in candidates]} and download=False; set AEREC_DATA_HOME "
            f"to a directory holding ml-100k/"
        )
    return _download_ml100k(url or os.environ.get("AEREC_ML100K_URL") or ML100K_URL, cache_dir())


def _download(url: str, target: Path, dataset: str, folder: str) -> None:
    """Download ``url`` to ``target`` with a progress bar; a failure says what failed and the two ways out."""
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {url.rsplit('/', 1)[-1]}",
                      disable=None) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts and refused connections are OSErrors
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"could not download {dataset} from {url} ({reason}). Either connect this machine to the internet, "
            f"or set AEREC_DATA_HOME to a folder that holds {folder}/ (copied from a machine that has it)") from None


@contextlib.contextmanager
def _new_folder(path: Path):
    """Create ``path`` (and parents) for a download; remove what was created if the download fails."""
    created = []
    for parent in reversed([path, *path.parents]):
        if not parent.exists():
            created.append(parent)
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for folder in reversed(created):
            try:
                folder.rmdir()  # only if empty: never anything else
            except OSError:
                break
        raise


def _download_ml100k(url: str, cache: Path) -> Path:
    """Download the zip, verify every known file in it, and move the folder into the cache in one rename."""
    final = cache / "ml-100k"
    with _new_folder(cache), tempfile.TemporaryDirectory(dir=cache, prefix=".ml-100k-download-") as tmp:
        archive = Path(tmp) / "ml-100k.zip"
        _download(url, archive, "MovieLens-100K", "ml-100k")
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise ChecksumError(f"{url}: the download is not a valid zip archive ({exc}); nothing was cached") from exc
        unpacked = Path(tmp) / "ml-100k"
        bad = [name for name, digest in ML100K_SHA256.items()
               if not (unpacked / name).is_file() or sha256_of(unpacked / name) != digest]
        if bad:
            raise ChecksumError(
                f"{url}: {len(bad)} file(s) missing or with a wrong SHA-256: {bad}; nothing was cached"
            )
        if not final.exists():
            unpacked.rename(final)
    return final


def _read_ratings(directory: Path, name: str) -> pd.DataFrame:
    path = directory / name
    _verify(path, ML100K_SHA256[name])
    return pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"], dtype="int64")


def movielens_100k(download: bool = True, url: str | None = None) -> MovieLens100K:
    """Load MovieLens-100K (F. M. Harper and J. A. Konstan, 2015), downloading it once if needed.

    Parameters
    ----------
    download : bool, default True
        Whether to download the GroupLens zip when the files are not found locally.
    url : str, optional
        Where to download from (default: GroupLens, or ``$AEREC_ML100K_URL``).

    Returns
    -------
    MovieLens100K

    Examples
    --------
    >>> ml = movielens_100k()
    >>> ml.ratings.shape, ml.items.shape[0], ml.users.shape[0]
    ((100000, 4), 1682, 943)
    """
    directory = _find_ml100k(download, url)
    ratings = _read_ratings(directory, "u.data")
    _verify(directory / "u.item", ML100K_SHA256["u.item"])
    raw = pd.read_csv(directory / "u.item", sep="|", header=None, encoding="latin-1",
                      names=["item", "title", "release_date", "video_release_date", "imdb_url", *GENRES])
    flags = raw[list(GENRES)].to_numpy(dtype=bool)
    items = pd.DataFrame({
        "item": raw["item"].astype("int64"),
        "title": raw["title"].astype(str),
        "release_date": pd.to_datetime(raw["release_date"], format="%d-%b-%Y", errors="coerce"),
        "imdb_url": raw["imdb_url"].fillna(""),
        "genres": ["|".join(g for g, f in zip(GENRES, row) if f) for row in flags],
    })
    _verify(directory / "u.user", ML100K_SHA256["u.user"])
    users = pd.read_csv(directory / "u.user", sep="|", header=None,
                        names=["user", "age", "gender", "occupation", "zip_code"], dtype={"zip_code": str})
    return MovieLens100K(ratings=ratings, items=items, users=users, path=directory)


# --- MNIST -------------------------------------------------------------------------


@dataclass(frozen=True)
class MNIST:
    """The MNIST test set: ``images`` uint8 (10000, 28, 28) and ``labels`` uint8 (10000,)."""

    images: np.ndarray
    labels: np.ndarray


def _find_mnist(download: bool, url: str | None) -> Path:
    home = data_home()
    repo_data = Path(__file__).resolve().parent.parent / "data" / "mnist"
    candidates = ([home / "mnist"] if home else []) + [repo_data, cache_dir() / "mnist"]
    for directory in candidates:
        if all((directory / name).is_file() for name in MNIST_SHA256):
            return directory
    if not download:
        raise FileNotFoundError(f"the MNIST test set is not in {[str(c) for c in candidates]} and download=False")
    return _download_mnist(url or os.environ.get("AEREC_MNIST_URL") or MNIST_URL, cache_dir() / "mnist")


def _download_mnist(base_url: str, target: Path) -> Path:
    """Download both files, verifying each before it takes its final name."""
    with _new_folder(target):
        for name, digest in MNIST_SHA256.items():
            with tempfile.NamedTemporaryFile(dir=target, delete=False, prefix=".", suffix=".part") as tmp:
                partial = Path(tmp.name)
            try:
                url = base_url.rstrip("/") + "/" + name
                _download(url, partial, "the MNIST test set", "mnist")
                _verify(partial, digest, label=f"{url} (nothing was cached)")
                partial.replace(target / name)
            finally:
                partial.unlink(missing_ok=True)
    return target


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08 or (magic & 0xFF) != expected_dims:
        raise DataValidationError(f"{path}: not an idx file of unsigned bytes with {expected_dims} dimension(s)")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(expected_dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * expected_dims).reshape(dims)


def mnist(download: bool = True, url: str | None = None) -> MNIST:
    """Load the MNIST test set (10,000 digits, 28 x 28; LeCun, Cortes and Burges; CC BY-SA 3.0).

    Examples
    --------
    >>> data = mnist()
    >>> data.images.shape, data.labels[:5].tolist()
    ((10000, 28, 28), [7, 2, 1, 0, 4])
    """
    directory = _find_mnist(download, url)
    for name, digest in MNIST_SHA256.items():
        _verify(directory / name, digest)
    images = _read_idx(directory / "t10k-images-idx3-ubyte.gz", 3)
    labels = _read_idx(directory / "t10k-labels-idx1-ubyte.gz", 1)
    return MNIST(images=images, labels=labels)


# --- synthetic interactions ------------------------------------------------------------------------
def synthetic_interactions(n_users: int, n_items: int, n_interactions: int, seed: int = 0, n_clusters: int = 20,
                           item_exponent: float = 1.0, activity_sigma: float = 1.0,
                           affinity: float = 0.7) -> pd.DataFrame:
    """Implicit interactions of the shape real logs have, generated deterministically: for benchmarks at sizes
    no public file of ours has.

    - **Items**: popularity follows Zipf's law, ``p_i ∝ 1 / rank_i ** item_exponent`` (ranks shuffled
      over the ids), and each item belongs to one of ``n_clusters`` tastes.
    - **Users**: activity is log-normal (``exp(N(0, activity_sigma))``, scaled to ``n_interactions``
      draws in all, at least one each), and each user has a home taste.
    - **Draws**: with probability ``affinity`` a user's draw comes from the items of their home taste
      (by popularity within it), otherwise from the whole catalogue (by popularity). The tastes are
      what a model can learn beyond popularity.

    A repeated (user, item) draw is kept once and the users left short draw again (a few rounds), so
    the frame has close to ``n_interactions`` distinct rows (a user holds at most half the catalogue).
    Ids are strings, ``"u0"``.. and ``"i0"``.., as a user's own ids would be.

    Parameters
    ----------
    n_users, n_items, n_interactions : int
    seed : int, default 0
        The same arguments and seed give the same frame, on any machine.
    n_clusters : int, default 20
    item_exponent : float, default 1.0
    activity_sigma : float, default 1.0
    affinity : float, default 0.7

    Returns
    -------
    DataFrame with columns ``user`` and ``item``.

    Examples
    --------
    >>> df = synthetic_interactions(1_000, 300, 10_000, seed=0)
    >>> list(df.columns), df["user"].iloc[0][0], len(df) <= 10_000
    (['user', 'item'], 'u', True)
    """
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_interactions", n_interactions),
                        ("n_clusters", n_clusters)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DataValidationError(f"synthetic_interactions: {name} must be a positive integer, got {value!r}")
    if not 0 <= affinity <= 1:
        raise DataValidationError(f"synthetic_interactions: affinity must be in [0, 1], got {affinity!r}")
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** float(item_exponent)
    popularity = popularity[rng.permutation(n_items)]
    item_cluster = rng.integers(0, n_clusters, n_items)
    user_cluster = rng.integers(0, n_clusters, n_users)
    activity = np.exp(rng.normal(0.0, float(activity_sigma), n_users))
    wanted = np.maximum(1, np.floor(activity / activity.sum() * n_interactions)).astype(np.int64)
    wanted = np.minimum(wanted, max(1, n_items // 2))  # nobody can have more distinct items than exist
    global_p = popularity / popularity.sum()
    cluster_items = [np.flatnonzero(item_cluster == c) for c in range(n_clusters)]
    cluster_p = [popularity[m] / popularity[m].sum() if len(m) else None for m in cluster_items]

    def draw(users: np.ndarray) -> np.ndarray:
        items = rng.choice(n_items, size=len(users), p=global_p)
        in_cluster = rng.random(len(users)) < affinity
        for c in range(n_clusters):
            at = np.flatnonzero(in_cluster & (user_cluster[users] == c))
            if len(at) and cluster_p[c] is not None:
                items[at] = cluster_items[c][rng.choice(len(cluster_items[c]), size=len(at), p=cluster_p[c])]
        return users * np.int64(n_items) + items

    # repeated draws of a (user, item) pair are kept once; the users left short draw again, a few rounds
    pairs = np.unique(draw(np.repeat(np.arange(n_users), wanted)))
    for _ in range(8):
        short = wanted - np.bincount(pairs // n_items, minlength=n_users)
        if short.sum() <= 0.001 * n_interactions:
            break
        pairs = np.unique(np.concatenate([pairs, draw(np.repeat(np.arange(n_users), np.maximum(short, 0)))]))
    # one string object per id, rows pointing at them: 8 bytes a row, where a string per row took about
    # 120 bytes a column at its peak (10^8 rows did not fit in 24 GiB)
    users = np.char.add("u", np.arange(n_users).astype(str)).astype(object)
    items = np.char.add("i", np.arange(n_items).astype(str)).astype(object)
    return pd.DataFrame({"user": users[pairs // n_items], "item": items[pairs % n_items]})
