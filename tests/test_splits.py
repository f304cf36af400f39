"""aerec's split functions reproduce the fixed protocol files row for row."""
import pandas as pd
import pytest

from aerec import evaluate as ev
from aerec.data import strong_split, weak_split
from aerec.data.splits import implicit_positives

COLUMNS = ["user", "item", "rating", "ts"]


def test_positives_match_the_protocol(positives):
    assert (len(positives), positives["user"].nunique(), positives["item"].nunique()) == (55361, 938, 1447)


@pytest.mark.parametrize("seed", [0, 4])
def test_weak_split_reproduces_protocol_a1(positives, seed):
    fixed = ev.load_protocol_a("weak", seed)
    ours = weak_split(positives.rename(columns={"timestamp": "ts"}), seed=seed)
    for name, part in zip(("train", "valid", "test"), ours):
        pd.testing.assert_frame_equal(part[COLUMNS].reset_index(drop=True), fixed[name])


def test_strong_split_reproduces_protocol_a2(positives):
    fixed = ev.load_protocol_a("strong", 2)
    ours = strong_split(positives.rename(columns={"timestamp": "ts"}), seed=102)
    for name, part in ours.items():
        pd.testing.assert_frame_equal(part[COLUMNS].reset_index(drop=True), fixed[name])


def test_every_user_keeps_a_row_in_each_part():
    df = pd.DataFrame({"user": [1] * 5 + [2] * 12, "item": list(range(5)) + list(range(12))})
    train, valid, test = weak_split(df, seed=0)
    for part in (train, valid, test):
        assert set(part["user"]) == {1, 2}
    assert len(train) + len(valid) + len(test) == len(df)


def test_implicit_positives_names_missing_columns():
    with pytest.raises(ValueError, match=r"no column\(s\) \['rating'\]"):
        implicit_positives(pd.DataFrame({"user": [1], "item": [2]}))
