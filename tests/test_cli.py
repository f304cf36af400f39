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
