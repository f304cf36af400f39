"""The ``aerec`` command line: thin shells over the public API."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(help="aerec: autoencoder codes + FAISS for recommendations and similarity search.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", "-v",
                                          help="Show TensorFlow's and the libraries' own log lines.")):
    """aerec: autoencoder codes + FAISS for recommendations and similarity search."""
    import logging
    import os

    if not verbose:  # before TensorFlow is imported (lazily, by the commands that need it)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        for name in ("tensorflow", "absl", "keras"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command()
def quickstart(
    out: Path = typer.Option(Path("aerec-quickstart"), help="Where to save the fitted model (a bundle directory)."),
    l2: float = typer.Option(300.0, help="EASE regularisation."),
    users: int = typer.Option(3, min=1, help="How many users to show recommendations for."),
):
    """Load MovieLens-100K, fit EASE, show top-10 lists with titles, print protocol A1 metrics, save the model."""
    import aerec
    from aerec.data.splits import implicit_positives, weak_split
    from aerec.exceptions import AerecError

    try:
        ml = aerec.datasets.movielens_100k()
        try:
            split = aerec.evaluate.load_protocol_a("weak", 0)
            source = "the fixed protocol files"
        except FileNotFoundError:
            # identical to the fixed files (tests/test_splits.py checks it row for row)
            positives = implicit_positives(ml.ratings).rename(columns={"timestamp": "ts"})
            split = dict(zip(("train", "valid", "test"), weak_split(positives, seed=0)))
            source = "aerec.data.weak_split (identical to the protocol files)"
        typer.echo(f"MovieLens-100K: {len(ml.ratings):,} ratings from {ml.path}")
        typer.echo(f"Protocol A1 seed 0 ({source}): {len(split['train']):,} train / {len(split['valid']):,} valid / "
                   f"{len(split['test']):,} test positives (rating >= 4)")
        model = aerec.EASE(l2=l2).fit(split["train"])
        typer.echo(f"Fitted {model!r} on {len(model.users_)} users x {len(model.items_)} items "
                   f"in {model.fit_seconds_:.2f} s\n")
        titles = ml.items.set_index("item")["title"]
        shown = sorted(split["train"]["user"].unique())[:users]
        recs = model.recommend(shown, k=10)
        for user, group in recs.groupby("user", sort=False):
            liked = split["train"].loc[split["train"]["user"] == user, "item"].head(3)
            typer.secho(f"user {user} liked {', '.join(titles[liked])}, ...", bold=True)
            for row in group.itertuples():
                typer.echo(f"  {row.rank:2d}. {titles[row.item]}  (score {row.score:.3f})")
        per_user = aerec.evaluate.evaluate_weak(model, split["test"], exclude=split["valid"])
        typer.echo("\nProtocol A1 (seed 0) test metrics, mean over "
                   f"{len(per_user)} users:\n" + per_user.mean().round(4).to_frame("EASE").T.to_string())
        model.save(out)
        typer.echo(f"\nSaved to {out}/ — load it with aerec.load({str(out)!r})")
    except (AerecError, FileNotFoundError, OSError) as exc:
        _fail(str(exc))


def _parse_params(params: list[str]) -> dict:
    """``["l2=300", "hidden=[600,200]"]`` -> ``{"l2": 300, "hidden": [600, 200]}`` (JSON values, else strings)."""
    import json

    out = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            _fail(f"--param wants NAME=VALUE, got {item!r}")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def _ids(values: str, fitted) -> list:
    """Comma-separated ids, as ids of the fitted kind (:func:`aerec.data.coerce_ids`: "007" stays a string
    where the ids are strings, "42" becomes 42 where they are integers)."""
    from .data import coerce_ids

    return coerce_ids([v.strip() for v in values.split(",") if v.strip()], fitted)


def _message(exc: BaseException) -> str:
    """An exception as one line: a KeyError's message without the quotes its str() adds."""
    if isinstance(exc, KeyError) and type(exc).__str__ is KeyError.__str__ and len(exc.args) == 1:
        return str(exc.args[0])
    return str(exc)


def _emit(frame, output: Path | None) -> None:
    if output is None:
        typer.echo(frame.to_csv(index=False), nl=False)
    elif output.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(output, index=False)
    else:
        frame.to_csv(output, index=False, sep="\t" if output.suffix.lower() == ".tsv" else ",")


def _errors(func):
    """Run a command body, turning aerec's and the OS's errors into one line and exit code 1."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from .exceptions import AerecError

        try:
            return func(*args, **kwargs)
        except (AerecError, FileNotFoundError, OSError, ValueError, KeyError, TypeError) as exc:
            _fail(_message(exc))

    return wrapper


@app.command()
@_errors
def fit(
    data: Path = typer.Argument(..., help="Interactions: a CSV, TSV or Parquet file."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write."),
    model: str = typer.Option("EASE", help="Estimator class, e.g. EASE, Popularity."),
    user: str = typer.Option("user", help="User id column."),
    item: str = typer.Option("item", help="Item id column."),
    rating: str = typer.Option(None, help="Rating column (optional)."),
    threshold: float = typer.Option(None, help="Keep rows with rating >= threshold as positives."),
    valid: Path = typer.Option(None, help="Held-out interactions of the same users, for early stopping."),
    time: str = typer.Option(None, help="Time column that orders each user's history (SequentialDAE)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Hyperparameter NAME=VALUE (repeatable)."),
):
    """Fit a recommender on a file of interactions and save it as a bundle."""
    import inspect

    from .base import estimator_classes
    from .data import read_table
    from .recommend import Recommender

    classes = {name.lower(): cls for name, cls in estimator_classes(base=Recommender).items()}
    if model.lower() not in classes:
        _fail(f"unknown model {model!r}; choose one of {sorted(cls.__name__ for cls in classes.values())}")
    estimator = classes[model.lower()](**_parse_params(param))
    ordered = {}
    if time is not None:
        if "time" not in inspect.signature(estimator.fit).parameters:
            _fail(f"--time orders each user's history; {type(estimator).__name__} reads histories as sets "
                  f"(a sequential model does: SequentialDAE)")
        ordered = {"time": time}
    frame = read_table(data)
    estimator.fit(frame, valid=read_table(valid) if valid else None, user=user, item=item, rating=rating,
                  threshold=threshold, **ordered)
    estimator.save(out)
    typer.echo(f"fitted {estimator!r} on {len(estimator.users_)} users x {len(estimator.items_)} items "
               f"in {estimator.fit_seconds_:.2f} s; saved to {out}")


@app.command()
@_errors
def recommend(
    bundle: Path = typer.Argument(..., help="A saved recommender bundle."),
    users: str = typer.Option(None, help="Comma-separated user ids."),
    history: Path = typer.Option(None, help="Or: a file of (user, item) rows of new users to fold in."),
    all_users: bool = typer.Option(False, "--all", help="Or: every training user, streamed to --output (Parquet)."),
    k: int = typer.Option(10, min=1),
    output: Path = typer.Option(None, "--output", "-o", help="Write CSV/TSV/Parquet here instead of stdout."),
):
    """Top-k recommendations for known users (--users), new users' histories (--history) or all users (--all)."""
    import aerec
    from .data import read_table

    if (users is not None) + (history is not None) + all_users != 1:
        _fail("give exactly one of --users, --history and --all")
    if all_users and (output is None or output.suffix.lower() not in (".parquet", ".pq")):
        _fail("--all writes Parquet in batches: give --output FILE.parquet")
    model = aerec.load(bundle)
    if all_users:
        rows = model.recommend_all(output, k=k, progress=sys.stderr.isatty())
        typer.echo(f"wrote {rows} recommendations of {len(model.users_)} users to {output}")
        return
    if users:
        recs = model.recommend(_ids(users, model.users_), k=k)
    else:
        recs = model.recommend_for_history(read_table(history), k=k)
    _emit(recs, output)


@app.command("similar-items")
@_errors
def similar_items(
    bundle: Path = typer.Argument(..., help="A saved recommender bundle."),
    items: str = typer.Option(..., help="Comma-separated item ids."),
    k: int = typer.Option(10, min=1),
    output: Path = typer.Option(None, "--output", "-o"),
):
    """The k items most similar to each given item."""
    import aerec

    model = aerec.load(bundle)
    _emit(model.similar_items(_ids(items, model.items_), k=k), output)


@app.command()
@_errors
def evaluate(
    bundle: Path = typer.Argument(..., help="A saved recommender bundle."),
    test: Path = typer.Option(..., help="Held-out (user, item) rows to find."),
    exclude: Path = typer.Option(None, help="Extra (user, item) rows to leave out of the ranking (e.g. validation)."),
    fold_in: Path = typer.Option(None, help="For users unseen in training: their fold-in rows (strong generalisation)."),
):
    """Ranking metrics (Recall@20/50, NDCG@10/100, HR@10) of a bundle on held-out interactions."""
    import aerec
    from .data import read_table
    from .evaluate import evaluate_strong, evaluate_weak

    model = aerec.load(bundle)
    truth = read_table(test)
    if fold_in is not None:
        per_user = evaluate_strong(model, read_table(fold_in), truth)
    else:
        per_user = evaluate_weak(model, truth, exclude=read_table(exclude) if exclude else None)
    typer.echo(f"{len(per_user)} users\n" + per_user.mean().round(4).to_frame(type(model).__name__).T.to_string())


@app.command()
@_errors
def impute(
    bundle: Path = typer.Argument(..., help="A saved TableAutoencoder or AutoRec bundle."),
    data: Path = typer.Argument(..., help="CSV, TSV or Parquet: a table with missing cells (TableAutoencoder), "
                                          "or (user, item) pairs to rate (AutoRec)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write CSV/TSV/Parquet here instead of stdout."),
    user: str = typer.Option(None, help="AutoRec: the user id column (default: the one the model was fitted with)."),
    item: str = typer.Option(None, help="AutoRec: the item id column (default: the one the model was fitted with)."),
):
    """Fill the missing cells of a table (TableAutoencoder) or predict the ratings of (user, item) pairs (AutoRec)."""
    import warnings

    import aerec
    from .data import read_table
    from .exceptions import AerecWarning
    from .recommend import AutoRec
    from .table import TableAutoencoder

    model = aerec.load(bundle)
    if not isinstance(model, (TableAutoencoder, AutoRec)):
        _fail(f"{bundle} holds a {type(model).__name__}; impute needs a TableAutoencoder or AutoRec bundle")
    if isinstance(model, TableAutoencoder) and (user or item):
        _fail("--user and --item are for AutoRec bundles; a TableAutoencoder fills every column it was fitted on")
    frame = read_table(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AerecWarning)
        result = model.impute(frame) if isinstance(model, TableAutoencoder) else model.predict(frame, user=user, item=item)
    for warning in caught:  # one line each, without the source location
        typer.secho(f"warning: {warning.message}", fg=typer.colors.YELLOW, err=True)
    _emit(result, output)
    if output is not None:
        what = "cells filled" if isinstance(model, TableAutoencoder) else "pairs rated"
        count = int(frame.isna().sum().sum()) if isinstance(model, TableAutoencoder) else len(result)
        typer.echo(f"{count} {what}; wrote {output}")


@app.command()
def serve(
    bundle: Path = typer.Argument(..., help="A saved recommender, ImageSearch or AutoRec bundle."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback unless told otherwise)."),
    port: int = typer.Option(8000),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
    api_key: str = typer.Option(None, envvar="AEREC_API_KEY", help="Require this X-API-Key header."),
    images: Path = typer.Option(None, help="ImageSearch: the folder to show thumbnails from (default: the one "
                                           "it was fitted on); nothing outside it is served."),
    titles: Path = typer.Option(None, help="Recommenders: a CSV/TSV/Parquet of item features whose titles the "
                                           "page shows (the model's item id column and --title-column)."),
    title_column: str = typer.Option("title", help="The column of --titles to show."),
):
    """Serve a bundle over HTTP (FastAPI + uvicorn): a page for a browser at /, OpenAPI docs at /docs."""
    import os

    try:
        import uvicorn
    except ImportError:
        _fail("serving needs the 'serve' extra: pip install 'aerec[serve]'")
    from .base import registered
    from .bundle import read_meta
    from .server import served_kinds, serving_kind

    try:
        meta = read_meta(bundle)  # fail now, in one line, rather than in every worker
        kind = serving_kind(registered(meta["class"]))
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        _fail(_message(exc))
    if kind is None:
        _fail(f"{bundle} holds a {meta['class']}; aerec serve answers {', '.join(served_kinds())} bundles "
              f"(recommenders, ImageSearch, AutoRec)")
    if api_key is not None and not api_key.strip():
        _fail("--api-key is empty; give a real key, or leave the option out to serve without one")
    if api_key is None and not _is_loopback(host):
        typer.secho(f"warning: serving on {host} without --api-key: anyone who can reach this machine can query "
                    f"the model", fg=typer.colors.YELLOW, err=True)
    if images is not None and kind != "image search":
        _fail(f"--images is for ImageSearch bundles; {bundle} holds a {meta['class']}")
    if images is not None and not images.is_dir():
        _fail(f"--images {images}: no such folder")
    if titles is not None:
        if kind != "recommender":
            _fail(f"--titles is for recommender bundles; {bundle} holds a {meta['class']}")
        _check_titles(titles, (meta.get("columns") or {}).get("item", "item"), title_column)
    os.environ["AEREC_BUNDLE"] = str(bundle.resolve())
    if api_key:
        os.environ["AEREC_API_KEY"] = api_key
    for name, value in (("AEREC_IMAGES", images), ("AEREC_TITLES", titles)):
        if value is not None:
            os.environ[name] = str(value.resolve())
    os.environ["AEREC_TITLE_COLUMN"] = title_column
    uvicorn.run("aerec.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning")


@_errors
def _check_titles(titles: Path, item: str, title: str) -> None:
    """Fail now, in one line, on a titles table without the columns the server reads (not in every worker)."""
    from .data import read_table

    columns = list(read_table(titles).columns)
    absent = [c for c in (item, title) if c not in columns]
    if absent:
        _fail(f"--titles {titles} has no column(s) {absent} (its columns: {columns}); the item ids are read "
              f"from {item!r}, the titles from --title-column ({title!r})")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


images_app = typer.Typer(help="Image similarity search: fit on a folder, search with images.", no_args_is_help=True)
app.add_typer(images_app, name="images")


@images_app.command("fit")
@_errors
def images_fit(
    folder: Path = typer.Argument(..., help="A folder of PNG/JPEG images (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write."),
    kind: str = typer.Option("conv-dae", help="conv-ae, conv-dae or conv-vae."),
    code_dim: int = typer.Option(32, min=1),
    epochs: int = typer.Option(50, min=1),
    channels: int = typer.Option(None, help="Convert to 1 (grayscale) or 3 (RGB) channels "
                                            "(default: the majority's)."),
    image_size: str = typer.Option(None, "--image-size", help="Working size, HEIGHTxWIDTH or one number for a "
                                                                "square (default: 64x64 for photos of mixed or large "
                                                                "sizes; images sharing one small size keep it)."),
    aspect: str = typer.Option("crop", help="How another aspect reaches the working size: crop, pad or stretch."),
):
    """Train an image autoencoder on a folder and save it with the FAISS index of the folder's codes."""
    from .images import ImageSearch

    size = None
    if image_size is not None:
        parts = image_size.lower().replace("×", "x").split("x")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            _fail(f"--image-size takes HEIGHTxWIDTH or one number, e.g. 64x96 or 64; got '{image_size}'")
        size = (int(parts[0]), int(parts[-1]))
    search = ImageSearch(kind=kind, code_dim=code_dim, epochs=epochs, channels=channels, image_size=size,
                         aspect=aspect).fit(folder)
    search.save(out)
    typer.echo(f"indexed {len(search.index_)} images ({len(search.skipped_)} skipped) in "
               f"{search.fit_seconds_:.1f} s; saved to {out}")


@images_app.command("search")
@_errors
def images_search(
    bundle: Path = typer.Argument(..., help="A saved ImageSearch bundle."),
    query: Path = typer.Argument(..., help="An image file, or a folder of query images."),
    k: int = typer.Option(10, min=1),
    output: Path = typer.Option(None, "--output", "-o"),
):
    """The k indexed images most like each query image."""
    import aerec
    from .images import ImageSearch

    search = aerec.load(bundle)
    if not isinstance(search, ImageSearch):
        _fail(f"{bundle} holds a {type(search).__name__}, not an ImageSearch")
    _emit(search.search(query, k=k), output)


@app.command()
def version():
    """Print the versions of aerec and of the libraries it runs on."""
    from .bundle import library_versions

    for name, value in library_versions().items():
        typer.echo(f"{name} {value}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
