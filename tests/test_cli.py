from typer.testing import CliRunner

import aerec
from aerec.cli import app

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
