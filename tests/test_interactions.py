import numpy as np
import pandas as pd
import pytest

from aerec.data import IdMap, Interactions
from aerec.exceptions import (DataValidationError, DuplicatesMergedWarning, MissingColumnError, UnknownIdError,
                              UnknownIdsWarning)


def frame(**cols):
    return pd.DataFrame(cols)


def test_builds_csr_with_the_users_ids():
    df = frame(user=["ann", "bob", "ann"], item=[10, 10, 20])
    X = Interactions.from_frame(df)
    assert X.shape == (2, 2) and X.nnz == 3
    assert X.users.ids.tolist() == ["ann", "bob"] and X.items.ids.tolist() == [10, 20]
    assert X.matrix.toarray().tolist() == [[1, 1], [1, 0]]
    assert X.rows(["bob"]).toarray().tolist() == [[1, 0]]
    back = X.to_frame()
    assert set(map(tuple, back[["user", "item"]].to_numpy())) == {("ann", 10), ("bob", 10), ("ann", 20)}


def test_ratings_and_threshold():
    df = frame(u=[1, 1, 2], i=["a", "b", "a"], r=[5, 2, 4])
    X = Interactions.from_frame(df, user="u", item="i", rating="r")
    assert X.matrix.toarray().tolist() == [[5, 2], [4, 0]]
    X = Interactions.from_frame(df, user="u", item="i", rating="r", threshold=4)
    assert X.matrix.toarray().tolist() == [[1], [1]] and X.items.ids.tolist() == ["a"]


@pytest.mark.parametrize("how, expected", [("last", 1.0), ("first", 5.0), ("sum", 9.0), ("max", 5.0), ("mean", 3.0)])
def test_duplicates_are_merged_with_a_counting_warning(how, expected):
    df = frame(user=[1, 1, 1, 2], item=[7, 7, 7, 7], rating=[5, 3, 1, 2])
    with pytest.warns(DuplicatesMergedWarning, match="merged 2 duplicated .* into 1 entries"):
        X = Interactions.from_frame(df, rating="rating", duplicates=how)
    assert X.matrix[0, 0] == expected and X.matrix[1, 0] == 2


def test_missing_column_is_named():
    with pytest.raises(MissingColumnError, match=r"no column\(s\) \['item'\]; its columns are \['user', 'movie'\]"):
        Interactions.from_frame(frame(user=[1], movie=[2]))


def test_null_ids_name_column_and_rows():
    df = pd.DataFrame({"user": [1, 2, None, 4, None], "item": [1, 1, 1, 1, 1]}, index=[10, 11, 12, 13, 14])
    with pytest.raises(DataValidationError, match=r"column 'user' has 2 null id\(s\), first at rows \[12, 14\]"):
        Interactions.from_frame(df)


def test_non_numeric_rating_names_column_rows_and_values():
    df = frame(user=[1, 2, 3], item=[1, 1, 1], stars=[4, "five", np.inf])
    with pytest.raises(DataValidationError, match=r"column 'stars' must be numeric .* first at rows \[1, 2\] \(values \['five', inf\]\)"):
        Interactions.from_frame(df, rating="stars")


def test_empty_and_not_a_frame():
    with pytest.raises(DataValidationError, match="interactions is empty"):
        Interactions.from_frame(frame(user=[], item=[]))
    with pytest.raises(DataValidationError, match="must be a pandas DataFrame, got list"):
        Interactions.from_frame([(1, 2)])


def test_fixed_maps_and_unknown_ids():
    items = IdMap.from_values(["a", "b"], name="item")
    df = frame(user=[1, 1, 2], item=["a", "zz", "b"])
    with pytest.raises(UnknownIdError, match="unknown item id.*'zz'.*in history"):
        Interactions.from_frame(df, items=items, what="history")
    with pytest.warns(UnknownIdsWarning, match=r"ignored 1 of 3 row\(s\).*1 with an unknown item"):
        X = Interactions.from_frame(df, items=items, on_unknown="warn")
    assert X.shape == (2, 2) and X.nnz == 2


def test_threshold_without_rating_is_an_error():
    with pytest.raises(ValueError, match="threshold needs a rating column"):
        Interactions.from_frame(frame(user=[1], item=[1]), threshold=4)
