import pytest
from typer.testing import CliRunner

import aerec
from aerec.cli import app
from aerec.exceptions import UnknownIdsWarning

runner = CliRunner()


def test_quickstart_shows_titles_metrics_and_saves(tmp_path):
    result = runner.invoke(app, ["quickstart", "--out", str(tmp_path / "qs"), "--users", "2"])
    assert result.exit_code == 0, result.output
    assert "user 1 liked" in result.output and "(1995)" in result.output
    assert "ndcg@100" in result.output and "recall@20" in result.output
    model = aerec.load(tmp_path / "qs")
    assert isinstance(model, aerec.EASE) and model.get_params()["l2"] == 300.0
    # the printed metric is the one the saved model achieves
    split = aerec.evaluate.load_protocol_a("weak", 0)
    ndcg = aerec.evaluate.evaluate_weak(model, split["test"], exclude=split["valid"])["ndcg@100"].mean()
    assert f"{ndcg:.4f}".rstrip("0") in result.output


def test_quickstart_error_is_one_line_without_traceback(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("x")
    result = runner.invoke(app, ["quickstart", "--out", str(tmp_path / "taken")])
    assert result.exit_code == 1
    assert "is not an aerec bundle; refusing to overwrite" in result.output
    assert "Traceback" not in result.output


def test_version_lists_libraries():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and "numpy" in result.output and "aerec" in result.output


def test_fit_recommend_similar_evaluate_roundtrip(tmp_path):
    split = aerec.evaluate.load_protocol_a("weak", 0)
    train, test = tmp_path / "train.parquet", tmp_path / "test.csv"
    split["train"].to_parquet(train)
    split["test"].to_csv(test, index=False)
    bundle = tmp_path / "bundle"
    result = runner.invoke(app, ["fit", str(train), "--out", str(bundle), "--model", "ease", "-p", "l2=250"])
    assert result.exit_code == 0, result.output
    model = aerec.load(bundle)
    assert model.get_params()["l2"] == 250

    result = runner.invoke(app, ["recommend", str(bundle), "--users", "1,2", "--k", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "user,item,score,rank" and len(lines) == 7
    assert [int(l.split(",")[1]) for l in lines[1:4]] == model.recommend([1], k=3)["item"].tolist()

    out = tmp_path / "sim.parquet"
    result = runner.invoke(app, ["similar-items", str(bundle), "--items", "50", "--k", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    import pandas as pd
    pd.testing.assert_frame_equal(pd.read_parquet(out), model.similar_items([50], k=4))

    result = runner.invoke(app, ["evaluate", str(bundle), "--test", str(test)])
    assert result.exit_code == 0 and "ndcg@100" in result.output

    every = tmp_path / "all.parquet"
    result = runner.invoke(app, ["recommend", str(bundle), "--all", "--k", "5", "-o", str(every)])
    assert result.exit_code == 0 and f"wrote {5 * len(model.users_)} recommendations" in result.output
    pd.testing.assert_frame_equal(pd.read_parquet(every), model.recommend(model.users_.ids, k=5))
    result = runner.invoke(app, ["recommend", str(bundle), "--all", "-o", str(tmp_path / "all.csv")])
    assert result.exit_code == 1 and "give --output FILE.parquet" in result.output


def test_cli_errors_name_the_problem(tmp_path):
    result = runner.invoke(app, ["fit", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "missing.csv: no such file" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("user,movie\n1,2\n")
    result = runner.invoke(app, ["fit", str(bad), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "no column(s) ['item']" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["fit", str(bad), "--out", str(tmp_path / "b"), "--model", "nosuch"])
    assert result.exit_code == 1 and "unknown model 'nosuch'" in result.output
    result = runner.invoke(app, ["recommend", str(tmp_path / "nobundle"), "--users", "1"])
    assert result.exit_code == 1 and "has no meta.json" in result.output


def test_impute_fills_a_table(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    frame = pd.DataFrame({"x": x, "y": 2 * x + rng.normal(scale=0.1, size=200), "z": rng.normal(size=200)})
    holes = frame.copy()
    holes.loc[::7, "y"] = np.nan
    model = aerec.TableAutoencoder(hidden_dim=16, epochs=20, seed=0).fit(holes)
    model.save(tmp_path / "table")
    holes.to_csv(tmp_path / "holes.csv", index=False)
    out = tmp_path / "filled.parquet"
    result = runner.invoke(app, ["impute", str(tmp_path / "table"), str(tmp_path / "holes.csv"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{int(holes.isna().sum().sum())} cells filled" in result.output
    filled = pd.read_parquet(out)
    assert filled.notna().all().all()
    pd.testing.assert_frame_equal(filled, model.impute(pd.read_csv(tmp_path / "holes.csv")))


def test_impute_rates_pairs_with_autorec_and_warns_in_one_line(tmp_path, ml100k):
    import pandas as pd

    ratings = ml100k.ratings
    ratings = ratings[(ratings["user"] <= 60) & ratings["item"].isin(ratings["item"].value_counts().index[:100])]
    model = aerec.AutoRec(hidden_dim=8, epochs=10, validation_fraction=0.0, seed=0).fit(ratings[["user", "item", "rating"]])
    model.save(tmp_path / "autorec")
    pairs = pd.DataFrame({"uid": [1, 2, 99999], "movie": [ratings["item"].iloc[0]] * 3})
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    result = runner.invoke(app, ["impute", str(tmp_path / "autorec"), str(tmp_path / "pairs.csv"),
                                 "--user", "uid", "--item", "movie"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert any(line.startswith("warning: ") and "1 of 3 pair(s)" in line for line in lines)
    csv = [line for line in lines if not line.startswith("warning: ")]
    assert csv[0] == "uid,movie,rating" and len(csv) == 4
    with pytest.warns(UnknownIdsWarning):
        expected = model.predict(pairs, user="uid", item="movie")["rating"].round(6).tolist()
    assert [round(float(line.split(",")[2]), 6) for line in csv[1:]] == expected


def test_impute_and_serve_errors_are_one_line(tmp_path, small_positives):
    aerec.EASE(l2=30.0).fit(small_positives).save(tmp_path / "ease")
    small_positives.to_csv(tmp_path / "x.csv", index=False)
    result = runner.invoke(app, ["impute", str(tmp_path / "ease"), str(tmp_path / "x.csv")])
    assert result.exit_code == 1 and "holds a EASE; impute needs a TableAutoencoder or AutoRec bundle" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["impute", str(tmp_path / "nobundle"), str(tmp_path / "x.csv")])
    assert result.exit_code == 1 and "has no meta.json" in result.output

    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0] * 10, "y": [0.5, np.nan, 1.5, 2.0] * 10})
    aerec.TableAutoencoder(hidden_dim=4, epochs=2, seed=0).fit(frame).save(tmp_path / "table")
    result = runner.invoke(app, ["serve", str(tmp_path / "table")])
    assert result.exit_code == 1 and "holds a TableAutoencoder; aerec serve answers" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["impute", str(tmp_path / "table"), str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_serve_refuses_an_empty_key(tmp_path, small_positives):
    aerec.Popularity().fit(small_positives).save(tmp_path / "pop")
    result = runner.invoke(app, ["serve", str(tmp_path / "pop"), "--api-key", ""])
    assert result.exit_code == 1 and "--api-key is empty" in result.output


def test_serve_checks_its_page_options(tmp_path, small_positives):
    aerec.Popularity().fit(small_positives).save(tmp_path / "pop")
    (tmp_path / "titles.csv").write_text("item,name\n1,Toy Story\n")
    result = runner.invoke(app, ["serve", str(tmp_path / "pop"), "--titles", str(tmp_path / "titles.csv")])
    assert result.exit_code == 1 and "has no column(s) ['title']" in result.output and "--title-column" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["serve", str(tmp_path / "pop"), "--titles", str(tmp_path / "none.csv")])
    assert result.exit_code == 1 and "no such file" in result.output
    result = runner.invoke(app, ["serve", str(tmp_path / "pop"), "--images", str(tmp_path)])
    assert result.exit_code == 1 and "--images is for ImageSearch bundles" in result.output


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_warns_when_open_to_the_network_without_a_key(tmp_path, small_positives):
    import subprocess
    import sys
    import time

    aerec.Popularity().fit(small_positives).save(tmp_path / "pop")
    proc = subprocess.Popen([sys.executable, "-m", "aerec.cli", "serve", str(tmp_path / "pop"), "--host", "0.0.0.0",
                             "--port", str(_free_port())], stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        time.sleep(0)
    assert "serving on 0.0.0.0 without --api-key" in first


def test_commands_are_quiet_unless_asked(tmp_path, small_positives):
    import subprocess
    import sys

    aerec.MultDAE(code_dim=8, epochs=1, seed=0).fit(small_positives).save(tmp_path / "dae")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "aerec.cli", "recommend", str(tmp_path / "dae"), "--users", "1",
                             "--k", "2"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no TensorFlow banner, no cuInit error
    assert result.stdout.splitlines()[0] == "user,item,score,rank"


def test_key_errors_keep_their_quotes_and_name_the_id(tmp_path, small_positives):
    aerec.EASE(l2=30.0).fit(small_positives).save(tmp_path / "ease")
    result = runner.invoke(app, ["similar-items", str(tmp_path / "ease"), "--items", "'quoted'"])
    assert result.exit_code == 1
    assert "1 unknown item id(s): \"'quoted'\"" in result.output


def test_csv_ids_with_leading_zeros_stay_distinct(tmp_path):
    (tmp_path / "clicks.csv").write_text("user,item\n007,a\n007,b\n7,a\n42,b\n42,c\n")
    result = runner.invoke(app, ["fit", str(tmp_path / "clicks.csv"), "-o", str(tmp_path / "b"), "--param", "l2=1"])
    assert result.exit_code == 0 and "3 users x 3 items" in result.output, result.output
    result = runner.invoke(app, ["recommend", str(tmp_path / "b"), "--users", "007", "--k", "1"])
    assert result.exit_code == 0 and result.output.splitlines()[1].split(",")[:2] == ["007", "c"], result.output


def test_fit_with_a_time_column_and_ordered_histories(tmp_path, small_positives):
    """--time orders each user's history for a sequential model; a history file's rows are ordered by the
    same column; a model that reads sets refuses --time."""
    import pandas as pd

    train = tmp_path / "train.parquet"
    small_positives.to_parquet(train)
    bundle = tmp_path / "seq"
    result = runner.invoke(app, ["fit", str(train), "--out", str(bundle), "--model", "SequentialDAE", "--time",
                                 "timestamp", "-p", "code_dim=8", "-p", "n_layers=1", "-p", "max_length=10",
                                 "-p", "epochs=2"])
    assert result.exit_code == 0, result.output
    model = aerec.load(bundle)
    assert model.columns_["time"] == "timestamp"
    history = small_positives[small_positives["user"] == small_positives["user"].iloc[0]].head(6).assign(user=-1)
    shuffled = tmp_path / "history.csv"
    history.iloc[::-1].to_csv(shuffled, index=False)  # rows newest first: the time column puts them back in order
    out = tmp_path / "recs.parquet"
    result = runner.invoke(app, ["recommend", str(bundle), "--history", str(shuffled), "--k", "5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_parquet(out), model.recommend_for_history(history, k=5))

    result = runner.invoke(app, ["fit", str(train), "--out", str(tmp_path / "ease"), "--model", "EASE",
                                 "--time", "timestamp"])
    assert result.exit_code == 1 and "EASE reads histories as sets" in result.output
