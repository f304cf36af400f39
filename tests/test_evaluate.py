"""Metrics against cases worked out by hand (PROTOCOL.md definitions)."""
import math

import numpy as np
import pandas as pd
import pytest

import aerec
from aerec import evaluate
from aerec import metrics as ev

# user 1 ranks a b c d e; relevant {b, e, x}
RANKED = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "e", "x"}


def test_recall_uses_min_k_denominator():
    assert ev.recall_at_k(RANKED, RELEVANT, 1) == 0.0          # 0 hits / min(1, 3)
    assert ev.recall_at_k(RANKED, RELEVANT, 2) == 0.5          # 1 hit  / min(2, 3)
    assert ev.recall_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 3)  # 2 hits / min(5, 3)


def test_ndcg_by_hand():
    dcg = 1 / math.log2(3) + 1 / math.log2(6)                  # hits at ranks 2 and 5
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)             # 3 ideal hits
    assert ev.ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(dcg / idcg)
    # K=2: one hit at rank 2; ideal = two hits (min(2, 3))
    assert ev.ndcg_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ev.ndcg_at_k(["b", "e", "x"], RELEVANT, 3) == pytest.approx(1.0)


def test_hit_rate_and_precision():
    assert ev.hit_rate_at_k(RANKED, RELEVANT, 1) == 0.0
    assert ev.hit_rate_at_k(RANKED, RELEVANT, 2) == 1.0
    assert ev.precision_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 5)


def test_rmse_mae_by_hand():
    assert ev.rmse([1, 2, 3], [1, 4, 3]) == pytest.approx(math.sqrt(4 / 3))
    assert ev.mae([1, 2, 3], [2, 4, 3]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        ev.rmse([1, 2], [1])


def test_auroc_by_hand_with_ties():
    # pairs (pos, neg): (0.35 > 0.1) (0.35 < 0.4) (0.8 > 0.1) (0.8 > 0.4) -> 3/4
    assert ev.auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie counts one half: pos 0.5 vs neg 0.5 -> 0.5
    assert ev.auroc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        ev.auroc([1, 1], [0.1, 0.2])


def test_vectorised_metrics_equal_the_one_user_definitions():
    rng = np.random.default_rng(0)
    items = np.arange(50)
    rows, truth_rows, expected = [], [], []
    for user in range(30):
        ranked = rng.permutation(items)[:20]
        relevant = set(rng.choice(items, size=rng.integers(1, 12), replace=False).tolist())
        rows += [(user, int(i), r + 1) for r, i in enumerate(ranked)]
        truth_rows += [(user, i) for i in relevant]
        expected.append([ev.recall_at_k(ranked, relevant, 10), ev.ndcg_at_k(ranked, relevant, 20),
                         ev.hit_rate_at_k(ranked, relevant, 3), ev.precision_at_k(ranked, relevant, 5)])
    recs = pd.DataFrame(rows, columns=["user", "item", "rank"])
    truth = pd.DataFrame(truth_rows, columns=["user", "item"])
    got = ev.ranking_metrics(recs, truth, ["recall@10", "ndcg@20", "hr@3", "precision@5"])
    np.testing.assert_allclose(got.to_numpy(), np.array(expected), rtol=1e-12)


def test_users_without_recommendations_count_as_zero():
    recs = pd.DataFrame({"user": [1], "item": ["a"], "rank": [1]})
    truth = pd.DataFrame({"user": [1, 2], "item": ["a", "a"]})
    got = ev.ranking_metrics(recs, truth, ["recall@1"])
    assert got["recall@1"].tolist() == [1.0, 0.0]


def test_metric_names_are_checked():
    with pytest.raises(ValueError, match="unknown metric 'mrr@10'"):
        ev.metrics_from_hits(np.zeros((1, 10), bool), np.array([1]), ["mrr@10"])
    with pytest.raises(ValueError, match="ndcg@100 needs the top 100"):
        ev.metrics_from_hits(np.zeros((1, 10), bool), np.array([1]), ["ndcg@100"])


def test_validation_metric_agrees_with_evaluate_weak():
    import aerec

    split = evaluate.load_protocol_a("weak", 1)
    model = aerec.EASE(l2=200.0).fit(split["train"])
    # keep only items known at fit time so both paths see the same truth
    valid = split["valid"][split["valid"]["item"].isin(model.items_.ids)]
    via_frames = evaluate.evaluate_weak(model, valid)["ndcg@100"].mean()
    via_matrix = model.validation_metrics(model._validation_data(valid), ["ndcg@100"])["ndcg@100"]
    assert via_matrix == pytest.approx(via_frames, rel=1e-9)


def test_protocol_a_loader_reads_the_fixed_files(monkeypatch):
    weak = evaluate.load_protocol_a("weak", 0)
    assert len(weak["train"]) + len(weak["valid"]) + len(weak["test"]) == 55361
    strong = evaluate.load_protocol_a("strong", 0)
    assert set(strong) == {"train", "valid_fold_in", "valid_held_out", "test_fold_in", "test_held_out"}
    assert not set(strong["test_fold_in"]["user"]) & set(strong["train"]["user"])
    monkeypatch.delenv("AEREC_DATA_HOME")
    monkeypatch.delenv("AEREC_BENCHMARKS_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"\['/nonexistent'\].*pass root= or set AEREC_BENCHMARKS_DIR"):
        evaluate.load_protocol_a("weak", 0, root="/nonexistent")


def test_early_stopping_checks_a_fixed_sample_of_many_validation_users(small_positives):
    model = aerec.Popularity().fit(small_positives)
    valid = model._validation_data(small_positives.groupby("user").head(2))
    model._early_stopping_users = 50
    sample = model._early_stopping_sample(valid)
    assert sample.inputs.shape[0] == 50 and sample.held_out.shape[0] == 50
    again = model._early_stopping_sample(valid)
    np.testing.assert_array_equal(sample.user_index, again.user_index)  # the same users every epoch
    rows = [
        int(np.flatnonzero(valid.user_index == u)[0]) for u in sample.user_index]
    assert (sample.inputs != valid.inputs[rows]).nnz == 0 and (sample.held_out != valid.held_out[rows]).nnz == 0
    model._early_stopping_users = 10_000
    assert model._early_stopping_sample(valid) is valid
