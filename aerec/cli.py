"""The ``aerec`` command line: thin shells over the public API."""
from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="aerec: autoencoder codes + FAISS for recommendations and similarity search.",
                  no_args_is_help=True, add_completion=False)


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


@app.command()
def version():
    """Print the versions of aerec and of the libraries it runs on."""
    from .bundle import _versions

    for name, value in _versions().items():
        typer.echo(f"{name} {value}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
