"""Tests for utils.ngram: counts, smoothing, cross-entropy, sampling and bad input."""
import math
from collections import Counter

import numpy as np
import pytest

from utils.ngram import NGramModel, bits_per_char, max_order, perplexity

V = 5
TINY = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2, 4])  # a tiny corpus with known counts


def _random_ids(size=3000, vocab=V, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, size=size)


def _all_contexts(length, vocab=V):
    if length == 0:
        return [()]
    grids = np.meshgrid(*[np.arange(vocab)] * length, indexing="ij")
    return [tuple(int(g) for g in row) for row in np.stack([g.ravel() for g in grids], 1)]


# ----------------------------------------------------------------------------- counts
def test_counts_match_a_python_counter_on_a_tiny_corpus():
    model = NGramModel(3, V, k=0).fit(TINY)
    trigrams = Counter(zip(TINY[:-2].tolist(), TINY[1:-1].tolist(), TINY[2:].tolist()))
    for a, b in _all_contexts(2):
        expected = [trigrams[(a, b, x)] for x in range(V)]
        assert model.next_token_counts([a, b]).tolist() == expected
    # bigram context (0, 1) is followed by 2, 3, 2
    assert model.next_token_counts([0, 1]).tolist() == [0, 0, 2, 1, 0]


def test_lower_orders_count_every_position_including_the_end():
    model = NGramModel(4, V, k=0).fit(TINY)
    assert model.next_token_counts([]).tolist() == np.bincount(TINY, minlength=V).tolist()
    # the final bigram (2, 4) must be counted although no 4-gram starts there
    assert model.next_token_counts([2]).tolist() == [1, 0, 0, 0, 1]
    assert model.num_ngrams == len(set(zip(*(TINY[j:len(TINY) - 3 + j].tolist() for j in range(4)))))
    assert model.num_contexts == len(set(zip(*(TINY[j:len(TINY) - 3 + j].tolist() for j in range(3)))))
    assert NGramModel(1, V).fit(TINY).num_contexts == 1


def test_unsmoothed_probability_is_count_over_context_count():
    model = NGramModel(2, V, k=0).fit(TINY)
    assert model.prob(2, [1]) == pytest.approx(2 / 3)
    assert model.prob(3, [1]) == pytest.approx(1 / 3)
    assert model.prob(0, []) == pytest.approx(3 / 10)


def test_add_k_formula():
    k = 0.5
    model = NGramModel(2, V, k=k).fit(TINY)
    assert model.prob(2, [1]) == pytest.approx((2 + k) / (3 + k * V))
    assert model.prob(4, [1]) == pytest.approx(k / (3 + k * V))


# ------------------------------------------------------------------- probabilities
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("k", [0.0, 0.1, 1.0])
def test_probabilities_sum_to_one_for_every_context(n, k):
    model = NGramModel(n, V, k=k).fit(_random_ids(200))
    for length in range(n):
        for ctx in _all_contexts(length):
            p = model.next_token_distribution(ctx)
            assert p.shape == (V,)
            assert np.all(p >= 0)
            assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_unseen_context_gives_uniform_distribution():
    model = NGramModel(3, V, k=0).fit(TINY)
    assert np.allclose(model.next_token_distribution([4, 4]), 1 / V)


def test_huge_k_tends_to_uniform_and_tiny_k_to_counts():
    model = NGramModel(2, V, k=1e9).fit(TINY)
    assert np.allclose(model.next_token_distribution([1]), 1 / V, atol=1e-8)
    model.k = 1e-12
    assert np.allclose(model.next_token_distribution([1]), [0, 0, 2 / 3, 1 / 3, 0], atol=1e-9)


def test_chain_rule_joint_probabilities_of_all_strings_sum_to_one():
    model = NGramModel(3, V, k=0.3).fit(_random_ids(500))
    total = 0.0
    for s in _all_contexts(3):
        total += math.exp(model.log_probs(np.array(s)).sum())
    assert total == pytest.approx(1.0, abs=1e-10)


# ------------------------------------------------------------------ cross-entropy
def test_cross_entropy_of_a_uniform_model_is_log_v():
    ids = _random_ids()
    for n in (1, 3):
        model = NGramModel(n, V, k=1e12).fit(ids)
        assert model.cross_entropy(_random_ids(seed=1)) == pytest.approx(math.log(V), abs=1e-6)


def test_refit_replaces_previous_counts():
    model = NGramModel(2, V, k=0).fit(np.array([0, 1, 0, 1]))
    model.fit(TINY)
    assert np.array_equal(model.next_token_counts([]), np.bincount(TINY, minlength=V))
    assert model.n_train_tokens == len(TINY)


def test_cross_entropy_is_mean_negative_log_prob_of_each_position():
    train, val = _random_ids(seed=2), _random_ids(50, seed=3)
    model = NGramModel(3, V, k=0.7).fit(train)
    manual = []
    for i, x in enumerate(val):
        ctx = val[max(0, i - 2):i]
        manual.append(-math.log(model.prob(int(x), ctx)))
    assert model.cross_entropy(val) == pytest.approx(np.mean(manual), rel=1e-12)


def test_unigram_cross_entropy_on_training_data_is_entropy_of_frequencies():
    ids = _random_ids(seed=4)
    freq = np.bincount(ids, minlength=V) / len(ids)
    model = NGramModel(1, V, k=0).fit(ids)
    assert model.cross_entropy(ids) == pytest.approx(-(freq * np.log(freq)).sum())


def test_unsmoothed_model_gives_infinite_cross_entropy_on_unseen_continuation():
    model = NGramModel(2, V, k=0).fit(TINY)
    assert math.isinf(model.cross_entropy(np.array([0, 4])))  # 4 never follows 0


def test_unseen_context_fraction():
    model = NGramModel(2, V).fit(np.array([0, 1, 0, 1]))
    assert model.unseen_context_fraction(np.array([0, 1, 2, 3])) == pytest.approx(1 / 3)
    assert NGramModel(1, V).fit(TINY).unseen_context_fraction(TINY) == 0.0


def test_context_seen_marks_each_full_context_position():
    model = NGramModel(2, V).fit(np.array([0, 1, 0, 1]))  # contexts seen: 0 and 1
    seen = model.context_seen(np.array([0, 1, 2, 3, 1]))   # contexts of positions 1..4: 0, 1, 2, 3
    assert seen.tolist() == [True, True, False, False]
    assert len(seen) == len(model.log_probs(np.array([0, 1, 2, 3, 1]))[1:])
    # where the context is unseen the model guesses uniformly; where it is seen, it does not here
    lp = model.log_probs(np.array([0, 1, 2, 3, 1]))[1:]
    assert np.allclose(lp[~seen], -math.log(V)) and not np.allclose(lp[seen], -math.log(V))
    assert NGramModel(1, V).fit(TINY).context_seen(TINY).all()


def test_context_seen_rejects_text_shorter_than_a_context():
    with pytest.raises(ValueError, match="full context"):
        NGramModel(3, V).fit(TINY).context_seen(np.array([0, 1]))


def test_bits_per_char_and_perplexity_conversions():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert perplexity(math.log(V)) == pytest.approx(V)
    assert np.allclose(bits_per_char(np.array([0.0, math.log(4)])), [0.0, 2.0])
    assert np.allclose(perplexity(np.array([0.0, 1.0])), [1.0, math.e])


def test_max_order_keys_fit_in_int64():
    n = max_order(76)
    assert 77 ** n < 2 ** 63 <= 77 ** (n + 1)
    NGramModel(n, 76)
    with pytest.raises(ValueError, match="too large"):
        NGramModel(n + 1, 76)


# ---------------------------------------------------------------------- sampling
def test_sampling_is_reproducible_by_seed():
    model = NGramModel(3, V).fit(_random_ids())
    a = model.sample(100, seed=7, prompt=[1, 2])
    assert np.array_equal(a, model.sample(100, seed=7, prompt=[1, 2]))
    assert not np.array_equal(a, model.sample(100, seed=8, prompt=[1, 2]))
    assert a.shape == (100,) and a.dtype == np.int64 and a.min() >= 0 and a.max() < V


def test_sampling_follows_a_deterministic_chain():
    model = NGramModel(2, V, k=0).fit(np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]))
    assert model.sample(7, seed=0, prompt=[2]).tolist() == [3, 4, 0, 1, 2, 3, 4]


def test_low_temperature_is_greedy_and_high_temperature_is_flat():
    model = NGramModel(2, V, k=0.1).fit(TINY)
    p = model.next_token_distribution([1])
    cold = model.next_token_distribution([1], temperature=0.01)
    hot = model.next_token_distribution([1], temperature=1e6)
    assert cold.argmax() == p.argmax() and cold.max() > 0.999
    assert np.allclose(hot, 1 / V, atol=1e-5)
    assert np.allclose(model.next_token_distribution([1], temperature=1.0), p)
    entropy = lambda q: -(q * np.log(q)).sum()  # noqa: E731
    assert entropy(model.next_token_distribution([1], 0.5)) < entropy(p) < entropy(model.next_token_distribution([1], 2))
    for seed in range(5):  # 0 is always followed by 1 and 1 mostly by 2: a cold sample is greedy
        assert model.sample(2, temperature=0.01, seed=seed, prompt=[0]).tolist() == [1, 2]


# -------------------------------------------------------------------- bad input
@pytest.mark.parametrize("n", [0, -1])
def test_rejects_n_below_one(n):
    with pytest.raises(ValueError, match="n must be >= 1"):
        NGramModel(n, V)


def test_rejects_non_integer_n_and_vocab():
    with pytest.raises(TypeError):
        NGramModel(2.5, V)
    with pytest.raises(TypeError):
        NGramModel(2, "5")
    with pytest.raises(ValueError):
        NGramModel(2, 0)


@pytest.mark.parametrize("k", [-0.1, float("inf"), float("nan")])
def test_rejects_bad_k(k):
    with pytest.raises(ValueError, match="k must be"):
        NGramModel(2, V, k=k)
    model = NGramModel(2, V)
    with pytest.raises(ValueError, match="k must be"):
        model.k = k


def test_rejects_ids_outside_the_vocabulary():
    model = NGramModel(2, V)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.fit(np.array([0, 1, V]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.fit(np.array([0, -1]))
    model.fit(TINY)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.cross_entropy(np.array([0, 7]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.next_token_distribution([9])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.sample(3, prompt=[V])


def test_rejects_strings_floats_2d_and_empty_input():
    model = NGramModel(2, V)
    with pytest.raises(TypeError, match="string"):
        model.fit("hello")
    with pytest.raises(TypeError, match="integer"):
        model.fit(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="1-D"):
        model.fit(np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="empty"):
        model.fit(np.array([], dtype=int))
    model.fit(TINY)
    with pytest.raises(ValueError, match="empty"):
        model.cross_entropy(np.array([], dtype=int))


def test_rejects_context_longer_than_n_minus_one():
    model = NGramModel(3, V).fit(TINY)
    with pytest.raises(ValueError, match="at most 2 previous tokens"):
        model.next_token_distribution([0, 1, 2])
    with pytest.raises(ValueError, match="at most 0 previous tokens"):
        NGramModel(1, V).fit(TINY).prob(0, [1])


@pytest.mark.parametrize("temperature", [0, -1.0, float("inf")])
def test_rejects_non_positive_temperature(temperature):
    model = NGramModel(2, V).fit(TINY)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(5, temperature=temperature)
    with pytest.raises(ValueError, match="temperature"):
        model.next_token_distribution([0], temperature=temperature)


def test_rejects_bad_n_tokens_and_use_before_fit():
    model = NGramModel(2, V)
    with pytest.raises(ValueError, match="not fitted"):
        model.cross_entropy(TINY)
    with pytest.raises(ValueError, match="not fitted"):
        model.sample(3)
    model.fit(TINY)
    with pytest.raises(ValueError, match="n_tokens"):
        model.sample(-1)
    with pytest.raises(TypeError, match="n_tokens"):
        model.sample(2.5)
