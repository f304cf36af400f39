import numpy as np
import pytest

from aerec.data import IdMap
from aerec.exceptions import DataValidationError, UnknownIdError


def test_sorted_stable_indices_and_roundtrip():
    m = IdMap.from_values([30, 10, 20, 10], name="user")
    assert m.ids.tolist() == [10, 20, 30]
    assert m.index_of([30, 10]).tolist() == [2, 0]
    assert m.ids_of([1, 2]).tolist() == [20, 30]
    assert len(m) == 3 and 20 in m and 99 not in m


def test_mixed_types_keep_first_appearance():
    m = IdMap.from_values(["b", 1, "a"], name="item")
    assert m.ids.tolist() == ["b", 1, "a"]
    assert m.index_of(["a", 1]).tolist() == [2, 1]


def test_unknown_ids_error_lists_them():
    m = IdMap.from_values(["a", "b"], name="item")
    with pytest.raises(UnknownIdError, match=r"2 unknown item id\(s\): 'z', 'y'") as info:
        m.index_of(["a", "z", "y", "z"])
    assert info.value.ids == ["z", "y"]
    assert isinstance(info.value, KeyError)


def test_unknown_policies():
    m = IdMap.from_values([1, 2, 3])
    assert m.index_of([3, 9, 1], on_unknown="skip").tolist() == [2, 0]
    assert m.index_of([3, 9, 1], on_unknown="mark").tolist() == [2, -1, 0]


def test_nulls_and_duplicates_are_refused():
    with pytest.raises(DataValidationError, match="user ids contain nulls"):
        IdMap([1, None], name="user")
    with pytest.raises(DataValidationError, match=r"item ids are not unique; repeated: \['a'\]"):
        IdMap(["a", "b", "a"], name="item")


def test_extend_appends_and_refuses_known_ids():
    m = IdMap.from_values([1, 2])
    bigger = m.extend([7, 5])
    assert bigger.ids.tolist() == [1, 2, 7, 5] and bigger.index_of([1]).tolist() == [0]
    with pytest.raises(DataValidationError, match=r"already known: \[2\]"):
        m.extend([2])


@pytest.mark.parametrize("ids", [[5, 3, 9], ["x", "y"], [np.int64(2), np.int64(1)]])
def test_parquet_roundtrip_keeps_ids_and_type(tmp_path, ids):
    m = IdMap.from_values(ids, name="item")
    m.to_parquet(tmp_path / "ids.parquet")
    back = IdMap.from_parquet(tmp_path / "ids.parquet")
    assert back == m and back.name == "item"
    assert type(back.ids[0]) is type(m.ids[0])


def test_unsaveable_ids_name_the_problem(tmp_path):
    m = IdMap.from_values([1, "a"], name="item")
    with pytest.raises(DataValidationError, match="cannot save item ids of dtype object"):
        m.to_parquet(tmp_path / "ids.parquet")
