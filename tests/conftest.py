"""Shared fixtures: small real data (MovieLens-100K from $AEREC_DATA_HOME)."""
from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def ml100k():
    import aerec

    return aerec.datasets.movielens_100k(download=False)


@pytest.fixture(scope="session")
def positives(ml100k) -> pd.DataFrame:
    """Implicit positives of ML-100K (rating >= 4, users with >= 5 of them): 55,361 rows."""
    from aerec.data.splits import implicit_positives

    return implicit_positives(ml100k.ratings)


@pytest.fixture(scope="session")
def small_positives(positives) -> pd.DataFrame:
    """The positives of the first 200 users on the 300 most popular items: small, real, fast."""
    top_items = positives["item"].value_counts().index[:300]
    frame = positives[positives["user"].isin(sorted(positives["user"].unique())[:200]) & positives["item"].isin(top_items)]
    return frame.reset_index(drop=True)
