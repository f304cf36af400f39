import keras
import numpy as np
import pandas as pd
import pytest

import aerec
from aerec.exceptions import DataValidationError, MissingColumnError, UnknownIdError
from aerec.models.sequential import SequentialDenoisingAutoencoder
from aerec.recommend.sequential import SequentialDAE

from contract import RecommenderContract

SMALL = dict(code_dim=16, n_layers=1, n_heads=2, max_length=20, epochs=2, batch_size=64)


class TestSequentialDAEContract(RecommenderContract):
    """The default: the causal next-item objective (the user code sits on the most recent item)."""
    # the contract's data has no time column: time=None orders each user's rows as the frame does
    history_is_fold_in = True

    def make_model(self):
        return SequentialDAE(**SMALL)


@pytest.mark.slow  # the default suite keeps the default objective's contract; Cloze is also covered by the tests below
class TestSequentialDAEClozeContract(RecommenderContract):
    """The Cloze objective behind the same contract (the user code sits on an appended mask token)."""
    history_is_fold_in = True

    def make_model(self):
        return SequentialDAE(**SMALL, objective="cloze")


def cycle_walks(n_users=100, n_items=12, length=10, seed=0):
    """Users walking a cycle of items from random starts: the next item is the last one + 1. The rows are
    shuffled, so only the time column gives the order."""
    rng = np.random.default_rng(seed)
    rows = [(u, f"i{(start + t) % n_items}", 100 * u + t)
            for u, start in enumerate(rng.integers(n_items, size=n_users)) for t in range(length)]
    frame = pd.DataFrame(rows, columns=["user", "item", "ts"])
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.mark.parametrize("objective, epochs", [pytest.param("cloze", 30, marks=pytest.mark.slow), ("next", 10)])
def test_order_matters_next_item_learned(objective, epochs):
    train = cycle_walks()
    model = SequentialDAE(code_dim=32, n_layers=1, max_length=12, epochs=epochs, batch_size=16, dropout=0.0,
                          mask_probability=0.3, learning_rate=5e-3, objective=objective).fit(train, time="ts")
    n_items = 12
    # fresh walks of 5 items, given in shuffled row order with their times; the answer is the next on the cycle
    starts = np.arange(40) % n_items
    history = pd.DataFrame([(f"new{q}", f"i{(s + t) % n_items}", t) for q, s in enumerate(starts) for t in range(5)],
                           columns=["user", "item", "ts"]).sample(frac=1.0, random_state=1)
    top = model.recommend_for_history(history, k=1)
    expected = {f"new{q}": f"i{(s + 5) % n_items}" for q, s in enumerate(starts)}
    hr1 = np.mean([expected[u] == i for u, i in top[["user", "item"]].to_numpy()])
    assert hr1 >= 0.9
    # a bag of items cannot tell a walk's end from its start: EASE sees the same set for every direction
    bag = aerec.EASE(l2=1.0).fit(train).recommend_for_history(history.drop(columns="ts"), k=1)
    assert np.mean([expected[u] == i for u, i in bag[["user", "item"]].to_numpy()]) < hr1
    # top_k_for_histories reads each list in its order: the same items, newest last
    walk = [f"i{t}" for t in (8, 9, 10, 11, 0)]
    top = model.top_k_for_histories([walk, sorted(walk)], k=1)
    assert top.items[0, 0] == "i1"


def test_max_length_keeps_most_recent_items():
    train = pd.DataFrame({"user": [1] * 6 + [2] * 2, "item": list("abcdef") + list("ab"),
                          "ts": [6, 5, 4, 3, 2, 1, 1, 2]})
    model = SequentialDAE(code_dim=8, n_layers=1, max_length=3, epochs=1, objective="cloze").fit(train, time="ts")
    items = model.items_.ids
    decoded = [[items[j - 1] for j in row if j > 0] for row in model.sequences_]
    user1 = model.users_.index_of([1])[0]
    assert decoded[user1] == ["c", "b", "a"]  # the three most recent, oldest first
    assert decoded[model.users_.index_of([2])[0]] == ["a", "b"]
    # Cloze: the user code reads the last max_length - 1 items (and the mask token): the same as a history of only those
    history = pd.DataFrame({"user": ["x", "x"], "item": ["b", "a"]})
    h_train = model.user_codes([1]).to_numpy()
    full = train[train["user"] == 1].assign(user="x")
    h_history = model._user_vectors(model._history_matrix(full, "user", "item").matrix, None)
    h_recent = model._user_vectors(model._history_matrix(history, "user", "item").matrix, None)
    np.testing.assert_allclose(h_train, h_history, atol=1e-5)
    np.testing.assert_allclose(h_train, h_recent, atol=1e-5)


def test_next_item_batches_shift_each_sequence_by_one_place():
    train = pd.DataFrame({"user": [1] * 4 + [2] * 2, "item": list("abcd") + list("ba"), "ts": [1, 2, 3, 4, 1, 2]})
    model = SequentialDAE(code_dim=8, n_layers=1, max_length=3, epochs=1).fit(train, time="ts")  # objective="next"
    assert model.network_.causal
    (tokens, positions), targets, weights = next(model._batches(model.sequences_))
    by_target = {tuple(t): (tuple(x), tuple(w)) for t, x, w in zip(targets, tokens, weights)}
    b, c, d = (model.items_.index_of([v])[0] for v in "bcd")
    # user 1 keeps b, c, d (the most recent 3): tokens (pad, b, c) predict (-, c, d); the first place has no input
    # every target weighs sequences / targets of the training set (2 / 3): the loss divides by the batch's sequences
    assert by_target[(b, c, d)][0] == (0, b + 1, c + 1)
    np.testing.assert_allclose(by_target[(b, c, d)][1], (0.0, 2 / 3, 2 / 3))
    assert weights.sum() == pytest.approx(len(model.sequences_))
    np.testing.assert_array_equal(positions, np.broadcast_to(np.arange(3), tokens.shape))
    # the user code reads the most recent max_length items, no mask token appended
    history = pd.DataFrame({"user": ["x"] * 3, "item": ["b", "c", "d"]})
    np.testing.assert_allclose(model.user_codes([1]).to_numpy(),
                               model._user_vectors(model._history_matrix(history, "user", "item").matrix, None),
                               atol=1e-5)


def test_causal_network_reads_left_to_right():
    net = SequentialDenoisingAutoencoder(6, max_length=5, code_dim=8, n_layers=2, dropout=0.0, causal=True, seed=0)
    tokens = np.array([[0, 1, 2, 3, 4], [0, 1, 2, 5, 6]], dtype="int32")
    h = keras.ops.convert_to_numpy(net.hidden_states(tokens))
    # the items before the change do not see it (the padding place 0 is never read: no key, no target)
    np.testing.assert_allclose(h[0, 1:3], h[1, 1:3], atol=1e-6)
    assert not np.allclose(h[0, 3:], h[1, 3:])
    bidirectional = SequentialDenoisingAutoencoder(6, max_length=5, code_dim=8, n_layers=2, dropout=0.0, seed=0)
    h = keras.ops.convert_to_numpy(bidirectional.hidden_states(tokens))
    assert not np.allclose(h[0, 1:3], h[1, 1:3])


def test_last_position_attention_leaves_out_padding_and_the_future():
    tokens = np.array([[0, 0, 1, 2, 3], [0, 4, 1, 2, 3]], dtype="int32")
    for causal in (True, False):
        net = SequentialDenoisingAutoencoder(6, max_length=5, code_dim=8, n_layers=2, dropout=0.0, causal=causal, seed=0)
        weights = keras.ops.convert_to_numpy(net.last_position_attention(tokens))
        assert weights.shape == (2, 2, 2, 5)  # users, blocks, heads, places
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(weights[0, :, :, :2], 0.0)  # padding is never attended to
        assert (weights[1, :, :, 1] > 0).all()


def test_attention_frame_of_a_history(walk_model):
    model = walk_model
    frame = model.attention(["i1", "i2", "i1", "i3"])  # i1 repeated: counted at its last place
    assert frame["item"].tolist() == ["i2", "i1", "i3"] and frame["position"].tolist() == [0, 1, 2]
    heads = [c for c in frame.columns if c.startswith("block ")]
    assert len(heads) == model.n_layers * model.n_heads
    np.testing.assert_allclose(frame[heads].sum(), 1.0, rtol=1e-5)  # causal: all the weight is on the history
    short = SequentialDAE(**{**SMALL, "max_length": 5, "epochs": 1}).fit(cycle_walks(n_users=20, length=4), time="ts")
    history = [f"i{n}" for n in range(12)]
    assert short.attention(history)["item"].tolist() == history[-5:]  # the most recent max_length items are read
    with pytest.raises(UnknownIdError):
        model.attention(["no such item"])


def test_bad_time_column():
    train = pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"], "ts": [1, 2, 3]})
    with pytest.raises(MissingColumnError, match="'when'"):
        SequentialDAE(**SMALL).fit(train, time="when")
    mixed = train.assign(ts=pd.Series([1, "b", 3.0], dtype=object))
    with pytest.raises(DataValidationError, match="'ts' cannot be sorted"):
        SequentialDAE(**SMALL).fit(mixed, time="ts")
    with pytest.raises(DataValidationError, match="'ts' has 1 missing"):
        SequentialDAE(**SMALL).fit(train.assign(ts=[1, None, 3]), time="ts")


@pytest.fixture(scope="module")
def walk_model():
    return SequentialDAE(**SMALL, sampled_softmax=5).fit(cycle_walks(n_users=20, length=4), time="ts")


def test_history_is_ordered_by_time_column(walk_model):
    model = walk_model
    history = pd.DataFrame({"user": ["x"] * 3, "item": ["i1", "i2", "i3"], "ts": [3, 2, 1]})
    reversed_rows = history.iloc[::-1].drop(columns="ts")  # the same order, given by the rows
    pd.testing.assert_frame_equal(model.recommend_for_history(history, k=5),
                                  model.recommend_for_history(reversed_rows, k=5))
    assert model.columns_["time"] == "ts"


def test_save_load_keeps_sequences_and_time(tmp_path, walk_model):
    model, train = walk_model, cycle_walks(n_users=20, length=4)
    model.save(tmp_path / "bundle")
    same = aerec.load(tmp_path / "bundle")
    np.testing.assert_array_equal(same.sequences_, model.sequences_)
    assert same.columns_["time"] == "ts"
    history = train[train["user"] == 3].assign(user="x")
    pd.testing.assert_frame_equal(same.recommend_for_history(history, k=5), model.recommend_for_history(history, k=5))


def test_keras_network_round_trip_and_config(tmp_path):
    net = SequentialDenoisingAutoencoder(9, max_length=6, code_dim=8, n_layers=2, n_heads=2, dropout=0.1,
                                         sampled_softmax=4, causal=True, seed=3)
    tokens = np.array([[0, 0, 2, 3, 4, 10], [1, 2, 3, 4, 5, 10]], dtype="int32")
    net.build()
    net.save(tmp_path / "net.keras")
    same = keras.saving.load_model(tmp_path / "net.keras", safe_mode=True)
    assert type(same) is SequentialDenoisingAutoencoder
    np.testing.assert_array_equal(same.user_code(tokens).numpy(), net.user_code(tokens).numpy())
    config = net.get_config()
    assert {k: config[k] for k in ("n_items", "max_length", "code_dim", "n_layers", "n_heads", "dropout",
                                   "sampled_softmax", "causal", "seed")} == {
        "n_items": 9, "max_length": 6, "code_dim": 8, "n_layers": 2, "n_heads": 2, "dropout": 0.1,
        "sampled_softmax": 4, "causal": True, "seed": 3}
    assert same.get_config() == config


def test_full_softmax_loss_matches_numpy():
    net = SequentialDenoisingAutoencoder(5, max_length=4, code_dim=4, n_layers=1, dropout=0.0, seed=0)
    tokens = np.array([[0, 1, 6, 3]], dtype="int32")
    positions, targets, weights = np.array([[2, 0]]), np.array([[4, 0]]), np.array([[1.0, 0.0]], "float32")
    logits = keras.ops.convert_to_numpy(net((tokens, positions)))
    loss = float(net.compute_loss(y=targets, y_pred=logits, sample_weight=weights, training=False))
    expected = -(logits[0, 0, 4] - np.log(np.exp(logits[0, 0]).sum()))
    assert loss == pytest.approx(expected, rel=1e-5)
