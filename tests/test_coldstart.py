"""Cold-start items: item features, the content model, add_items, and their saving (ML-100K, small and fast)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import aerec
from aerec.exceptions import DataValidationError, DroppedRowsWarning, MissingColumnError, NotFittedError
from aerec.features import feature_arrays, infer_feature_columns

from contract import _same_rankings

FAST = dict(loss="ridge")  # the default, closed form: a content model in well under a second


@pytest.fixture(scope="module")
def features(ml100k) -> pd.DataFrame:
    return ml100k.items[["item", "title", "release_date", "genres"]]


@pytest.fixture(scope="module")
def split(small_positives):
    """Every fifth item (by id) of the small data plays a new item: no interaction at fit time."""
    items = np.sort(small_positives["item"].unique())
    cold = items[::5]
    warm = small_positives[~small_positives["item"].isin(cold)].reset_index(drop=True)
    return warm, cold, small_positives[small_positives["item"].isin(cold)]


def _fit_and_add(warm, cold, features, model=None, content=None):
    model = model or aerec.EASE(l2=50.0)
    model.fit(warm, item_features=features[features["item"].isin(warm["item"])],
              content=content or aerec.ContentModel(**FAST))
    return model.add_items(features[features["item"].isin(cold)])


@pytest.fixture(scope="module")
def fitted(split, features):
    warm, cold, _ = split
    return _fit_and_add(warm, cold, features)


# --- roles and checks ------------------------------------------------------------------------
def test_roles_are_inferred_from_the_movielens_items(ml100k):
    cols = infer_feature_columns(ml100k.items)
    assert cols.text == ("title",) and cols.categorical == ("imdb_url",)  # one token per value
    assert cols.multilabel == ("genres",)
    assert cols.numeric == ("release_date",) and cols.datetime == ("release_date",)


def test_roles_of_lists_vectors_and_overrides():
    df = pd.DataFrame({"item": [1, 2, 3], "tags": [["a", "b"], ["b"], []], "code": [np.ones(4), np.zeros(4), np.ones(4)],
                       "studio": ["x", "y", "x"], "year": [1990, 1995, np.nan]})
    cols = infer_feature_columns(df)
    assert (cols.multilabel, cols.vector, cols.vector_dims, cols.categorical, cols.numeric) == (
        ("tags",), ("code",), (4,), ("studio",), ("year",))
    assert infer_feature_columns(df, text=["studio"], categorical="year").categorical == ("year",)
    ids, arrays = feature_arrays(df, cols)
    assert arrays["multilabel:tags"].tolist() == [["a", "b"], ["b", ""], ["", ""]]
    assert np.isnan(arrays["numeric"][2, 0]) and arrays["vector:code"].shape == (3, 4)


def test_bad_feature_tables_name_what_is_wrong():
    df = pd.DataFrame({"item": [1, 2, 2], "title": ["a b c", "d e f", "g h i"]})
    with pytest.raises(DataValidationError, match=r"item id\(s\) given more than once: \[2\]"):
        feature_arrays(df, infer_feature_columns(df))
    with pytest.raises(MissingColumnError, match=r"no column\(s\) \['genre'\]"):
        infer_feature_columns(df, multilabel=["genre"])
    with pytest.raises(DataValidationError, match="more than one role.*title"):
        infer_feature_columns(df, text=["title"], categorical=["title"])
    bad = pd.DataFrame({"item": [1, 2], "year": ["1990", "soon"]})
    with pytest.raises(DataValidationError, match=r"numeric column 'year'.*rows \[1\].*'soon'"):
        feature_arrays(bad, infer_feature_columns(bad, numeric=["year"]))
    ragged = pd.DataFrame({"item": [1, 2], "code": [[1.0, 2.0], [1.0]]})
    with pytest.raises(DataValidationError, match="vector column 'code' has cells of different lengths"):
        infer_feature_columns(ragged)


# --- add_items ---------------------------------------------------------------------------------
def test_add_items_extends_catalogue_codes_and_index(split, fitted):
    warm, cold, _ = split
    n_warm = warm["item"].nunique()
    assert len(fitted.items_) == n_warm + len(cold) and fitted.n_model_items_ == n_warm
    assert fitted.index_.ntotal == len(fitted.items_)
    assert list(fitted.items_.ids[n_warm:]) == list(cold)
    codes = fitted.item_codes()
    assert set(cold) <= set(codes.index) and np.isfinite(codes.loc[cold].to_numpy()).all()
    assert (fitted.item_popularity_[n_warm:] == 0).all()


def test_new_items_are_ranked_as_candidates_with_codes_as_scores(split, fitted):
    warm, cold, _ = split
    users = warm["user"].unique()[:10]
    recs = fitted.recommend(users, k=8, items=cold)
    assert set(recs["item"]) <= set(cold) and (recs.groupby("user").size() == 8).all()
    h, W = fitted.user_codes(users), fitted.item_codes()
    expected = np.einsum("ij,ij->i", h.loc[recs["user"]].to_numpy(np.float64),
                         W.loc[recs["item"]].drop(columns="bias").to_numpy(np.float64)) + W.loc[recs["item"], "bias"]
    np.testing.assert_allclose(recs["score"], expected, rtol=1e-4, atol=1e-5)


def test_new_items_enter_full_lists_the_same_way_through_the_index(split, fitted):
    warm, cold, _ = split
    users = warm["user"].unique()[:60]
    by_model, by_index = fitted.recommend(users, k=40), fitted.recommend(users, k=40, via="index")
    _same_rankings(by_model, by_index, "user", "item")
    assert by_model["item"].isin(cold).any()  # new items compete with the model's own


def test_similar_items_of_a_new_item_share_its_genres(split, fitted, features):
    warm, cold, _ = split
    sim = fitted.similar_items(cold, k=10)
    assert (sim.groupby("item").size() == 10).all() and not (sim["item"] == sim["similar_item"]).any()
    _same_rankings(fitted.similar_items(cold, k=10, via="model"), sim, "item", "similar_item")
    genres = features.set_index("item")["genres"].str.split("|").map(set)

    def jaccard(a, b):
        return len(genres[a] & genres[b]) / len(genres[a] | genres[b])

    found = np.mean([jaccard(i, j) for i, j in sim[["item", "similar_item"]].to_numpy()])
    rng = np.random.default_rng(0)
    others = np.asarray(fitted.items_.ids)
    chance = np.mean([jaccard(i, j) for i in cold for j in rng.choice(others, 10)])
    assert found > 1.5 * chance


def test_histories_with_new_items(split, fitted):
    warm, cold, _ = split
    user = warm["user"].iloc[0]
    history = pd.concat([warm[warm["user"] == user], pd.DataFrame({"user": [user], "item": [cold[0]]})])
    recs = fitted.recommend_for_history(history, k=10)
    assert cold[0] not in set(recs["item"]) and len(recs) == 10
    only_new = fitted.recommend_for_history(pd.DataFrame({"user": ["n"], "item": [cold[1]]}), k=10)
    sim = fitted.similar_items([cold[1]], k=10)
    assert only_new["item"].tolist() == sim["similar_item"].tolist()


def test_fit_adds_the_featured_items_it_has_no_interactions_for(split, features):
    warm, cold, _ = split
    model = aerec.EASE(l2=50.0).fit(warm, item_features=features[features["item"].isin(np.concatenate([warm["item"], cold]))],
                                    content=aerec.ContentModel(**FAST))
    assert set(model.items_.ids) == set(warm["item"]) | set(cold)
    assert model.recommend([warm["user"].iloc[0]], k=5, items=cold)["item"].isin(cold).all()


def test_add_items_errors_name_the_ids_and_columns(split, features):
    warm, cold, _ = split
    model = aerec.EASE(l2=50.0).fit(warm, item_features=features, content=aerec.ContentModel(**FAST))
    new = pd.DataFrame({"item": [5001, 5002], "title": ["A (1998)", "B (1998)"], "genres": ["Drama", "Comedy"],
                        "release_date": pd.to_datetime(["1998-01-01", "1998-02-01"])})
    with pytest.raises(MissingColumnError, match=r"no column\(s\) \['genres'\]"):
        model.add_items(new.drop(columns="genres"))
    with pytest.raises(DataValidationError, match=r"given more than once: \[5001\]"):
        model.add_items(pd.concat([new, new.iloc[:1]]))
    with pytest.raises(DataValidationError, match=rf"already in the catalogue: \[{cold[0]}\]"):
        model.add_items(pd.concat([new, features[features["item"] == cold[0]]]))
    with pytest.raises(DataValidationError, match="new item ids are string"):
        model.add_items(new.assign(item=["x", "y"]))
    n = len(model.items_)
    assert model.add_items(new) is model and len(model.items_) == n + 2  # the failed calls changed nothing
    with pytest.raises(NotFittedError, match="without item_features"):
        aerec.EASE(l2=50.0).fit(warm).add_items(new)
    with pytest.raises(DataValidationError, match="no row for any of the"):
        aerec.EASE(l2=50.0).fit(warm, item_features=new)
    with pytest.raises(ValueError, match="pass item_features too"):
        aerec.EASE(l2=50.0).fit(warm, content=aerec.ContentModel())


def test_vector_columns_such_as_image_codes_shape_the_code(split, features):
    warm, cold, _ = split
    rng = np.random.default_rng(0)
    table = features[["item", "genres"]].assign(image=[rng.normal(size=8) for _ in range(len(features))])
    model = _fit_and_add(warm, cold[:-1], table)
    assert model.content_.columns_.vector == ("image",)
    row = table[table["item"] == cold[-1]]
    flipped = row.assign(image=[-row["image"].iloc[0]])
    a, b = model.content_.transform(row), model.content_.transform(flipped)
    assert not np.allclose(a.to_numpy(), b.to_numpy())


# --- quality --------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [aerec.ContentModel(**FAST), aerec.ContentModel(loss="softmax", epochs=5)],
                         ids=["ridge", "softmax"])
def test_content_model_beats_chance_on_held_out_items(positives, features, content):
    cold = np.sort(positives["item"].unique())[::5]
    warm = positives[~positives["item"].isin(cold)]
    truth = positives[positives["item"].isin(cold) & positives["user"].isin(warm["user"])]
    model = aerec.EASE(l2=300.0).fit(warm, item_features=features, content=content)
    users = truth["user"].unique()
    recs = model.recommend(users, k=20, items=cold)
    recall = aerec.metrics.ranking_metrics(recs, truth, ["recall@20"])["recall@20"].mean()
    n_relevant = truth.groupby("user").size().to_numpy()
    chance = np.mean(20 * n_relevant / len(cold) / np.minimum(20, n_relevant))  # expected recall of a random order
    assert recall > 3 * chance, (recall, chance)


# --- saving --------------------------------------------------------------------------------------
def test_save_load_keeps_content_model_and_new_items(tmp_path, split, features):
    warm, cold, _ = split
    model = _fit_and_add(warm, cold[:-3], features, content=aerec.ContentModel(loss="softmax", epochs=2, hidden_dim=16))
    model.save(tmp_path / "bundle")
    same = aerec.load(tmp_path / "bundle")
    assert same.content_.get_params() == model.content_.get_params()
    users = warm["user"].unique()[:20]
    pd.testing.assert_frame_equal(same.recommend(users, k=10), model.recommend(users, k=10))
    pd.testing.assert_frame_equal(same.recommend(users, k=5, items=cold[:-3]), model.recommend(users, k=5, items=cold[:-3]))
    pd.testing.assert_frame_equal(same.similar_items(cold[:4], k=5), model.similar_items(cold[:4], k=5))
    pd.testing.assert_frame_equal(same.item_codes(), model.item_codes())
    last = features[features["item"].isin(cold[-3:])]
    same.add_items(last)
    model.add_items(last)
    pd.testing.assert_frame_equal(same.recommend(users, k=5, items=cold), model.recommend(users, k=5, items=cold))
    pd.testing.assert_frame_equal(same.similar_items(cold[-3:], k=5), model.similar_items(cold[-3:], k=5))


def test_content_model_checks_its_parameters(split, features):
    warm, _, _ = split
    with pytest.raises(ValueError, match="loss must be one of"):
        aerec.EASE(l2=50.0).fit(warm, item_features=features, content=aerec.ContentModel(loss="cosine"))
    with pytest.raises(ValueError, match="needs hidden_dim=0"):
        aerec.EASE(l2=50.0).fit(warm, item_features=features, content=aerec.ContentModel(hidden_dim=64))
    with pytest.raises(ValueError, match="folds must be an integer >= 2; got 1"):
        aerec.EASE(l2=50.0).fit(warm, item_features=features, content=aerec.ContentModel(loss="softmax", folds=1))
    model = aerec.EASE(l2=50.0)
    with pytest.raises(ValueError):
        model.fit(warm, item_features=features, content=aerec.ContentModel(loss="cosine"))
    assert not model.is_fitted  # a failed content model leaves no half-fitted recommender


# --- item photos -------------------------------------------------------------------------------
def _photo(kind: int, rng) -> "Image.Image":
    """A 32 x 32 grey photo of one of three looks: a bright band at the top, one at the left, a disc."""
    from PIL import Image

    y, x = np.mgrid[:32, :32]
    shift = rng.integers(-3, 4)
    pattern = [y < 12 + shift, x < 12 + shift, (y - 16 - shift) ** 2 + (x - 16) ** 2 < 64][kind]
    pixels = np.clip(pattern * 200 + rng.normal(30, 20, (32, 32)), 0, 255).astype("uint8")
    return Image.fromarray(pixels, mode="L")


@pytest.fixture(scope="module")
def photo_shop(tmp_path_factory):
    """Three tastes; an item's look (its photo) says which taste it serves, its title nothing."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    items = pd.DataFrame({"item": [f"i{j}" for j in range(60)], "taste": np.repeat([0, 1, 2], 20)})
    for row in items.itertuples():
        _photo(row.taste, rng).save(root / f"{row.item}.png")
    items["photo"] = items["item"] + ".png"
    items["title"] = [f"product {w} {rng.integers(10**6)}" for w in rng.permutation(60)]
    users = np.repeat(np.arange(150), 8)
    taste = users % 3
    liked = [f"i{20 * t + j}" for t, j in zip(taste, rng.integers(0, 20, len(users)))]
    train = pd.DataFrame({"user": users, "item": liked}).drop_duplicates()
    new = pd.DataFrame({"item": ["new0", "new1", "new2"], "taste": [0, 1, 2]})
    for row in new.itertuples():
        _photo(row.taste, rng).save(root / f"{row.item}.png")
    new["photo"] = new["item"] + ".png"
    new["title"] = "a brand new product"
    return root, train, items, new


def test_an_item_with_only_a_photo_and_a_title_is_recommended_to_its_taste(photo_shop, tmp_path):
    root, train, items, new = photo_shop
    search = aerec.ImageSearch(code_dim=8, filters=(8, 16), epochs=15, batch_size=16, seed=0, verbose=0)
    content = aerec.ContentModel(image=["photo"], image_search=search, image_root=root, min_df=1)
    model = aerec.EASE(l2=10.0).fit(train, item_features=items[["item", "title", "photo"]], content=content)
    assert model.content_.columns_.vector == ("photo",) and model.content_.image_search_.fitted_
    assert not hasattr(search, "fitted_")  # the estimator given is a template, left unfitted
    model.add_items(new[["item", "title", "photo"]])
    recs = model.recommend(sorted(train["user"].unique()), k=1, items=list(new["item"]))
    hit = (recs["item"].str[-1].astype(int) == recs["user"] % 3).mean()
    assert hit >= 0.8, hit  # by chance a third

    model.save(tmp_path / "shop")
    again = aerec.load(tmp_path / "shop")
    np.testing.assert_allclose(again.item_codes().loc[list(new["item"])], model.item_codes().loc[list(new["item"])],
                               atol=1e-5)
    assert again.content_.image_search_ is not None


def test_item_photos_that_cannot_be_read_are_counted_and_coded_without(photo_shop):
    root, train, items, new = photo_shop
    search = aerec.ImageSearch(code_dim=4, filters=(8,), epochs=1, seed=0, verbose=0)
    content = aerec.ContentModel(image="photo", image_search=search, image_root=root, min_df=1)
    model = aerec.EASE(l2=10.0).fit(train, item_features=items[["item", "title", "photo"]], content=content)
    broken = new.assign(photo=["new0.png", "nowhere.png", None])
    with pytest.warns(DroppedRowsWarning, match=r"1 photo\(s\) of column 'photo' could not be read.*nowhere.png"):
        model.add_items(broken[["item", "title", "photo"]])
    assert {"new0", "new1", "new2"} <= set(model.item_codes().index)
    with pytest.raises(MissingColumnError, match="photo"):
        model.add_items(pd.DataFrame({"item": ["x"], "title": ["t"]}))
