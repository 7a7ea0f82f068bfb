"""Tests for utils.bpe: byte-level BPE (Chapter 2)."""
import json
import math
import random
import re

import numpy as np
import pytest

from utils import bpe
from utils.bpe import BASE_VOCAB_SIZE, BPETokenizer

TOY = "low low low low low lower lower newest newest newest newest newest newest widest widest widest"

# A small Shakespeare-like text, enough for a few hundred merges.
SAMPLE = (
    "HAMLET:\nTo be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n"
    "And by opposing end them. To die—to sleep,\nNo more; and by a sleep to say we end\n\n"
    "OPHELIA:\nGood my lord,\nHow does your honour for this many a day?\n"
) * 3


def random_string(rng, n):
    """A string mixing ASCII, accented letters, CJK, emoji, white space and a lone surrogate."""
    alphabet = (list("abcXYZ019 _-—'\n\t.,;:!?") + ["é", "ß", "中", "文", "😀", "\u200b", "\r", "\ud800"])
    return "".join(rng.choice(alphabet) for _ in range(n))


@pytest.fixture(scope="module")
def sample_tok():
    return BPETokenizer.train(SAMPLE, 400, progress=False)


def test_chunks_cover_every_character_of_any_string():
    rng = random.Random(0)
    for _ in range(50):
        s = random_string(rng, rng.randrange(0, 60))
        assert "".join(re.findall(bpe.CHUNK_PATTERN, s)) == s


def test_round_trip_on_random_strings_including_unseen_characters(sample_tok):
    rng = random.Random(1)
    for _ in range(100):
        s = random_string(rng, rng.randrange(0, 80))
        assert sample_tok.decode(sample_tok.encode(s)) == s


def test_round_trip_on_corpus_strings():
    from utils import data

    text = data.corpus_text()[:200_000]
    tok = BPETokenizer.train(text[:50_000], 512, progress=False)
    for start in (0, 12_345, 150_000):
        piece = text[start:start + 5_000]
        assert tok.decode(tok.encode(piece)) == piece
    assert tok.decode(tok.encode(text)) == text


def test_known_merges_on_toy_text():
    tok = BPETokenizer.train(TOY, BASE_VOCAB_SIZE + 4, progress=False)
    # "es" and "st" occur 9 times (6x " newest", 3x " widest"); the tie goes to the smaller
    # byte pair, "es". Then "est" (9x); then "lo" and "ow" (7x each), tie to "lo"; then "low".
    assert [tok.token_str(BASE_VOCAB_SIZE + k) for k in range(4)] == ["es", "est", "lo", "low"]
    assert tok.merges[0] == (ord("e"), ord("s"))
    assert tok.merges[1] == (BASE_VOCAB_SIZE, ord("t"))


def test_merges_count_is_vocab_size_minus_base(sample_tok):
    assert len(sample_tok.merges) == 400 - BASE_VOCAB_SIZE
    assert sample_tok.vocab_size == 400
    assert len(sample_tok.vocab) == 400


def test_training_is_deterministic(sample_tok):
    again = BPETokenizer.train(SAMPLE, 400, progress=False)
    assert again.merges == sample_tok.merges


def test_smaller_vocabulary_is_a_prefix_of_larger(sample_tok):
    small = BPETokenizer.train(SAMPLE, 300, progress=False)
    assert small.merges == sample_tok.merges[:300 - BASE_VOCAB_SIZE]
    assert sample_tok.truncate(300).merges == small.merges


def test_merges_never_cross_chunk_boundaries(sample_tok):
    for i in range(BASE_VOCAB_SIZE, sample_tok.vocab_size):
        s = sample_tok.vocab[i].decode("utf-8", "replace")
        assert len(re.findall(bpe.CHUNK_PATTERN, s)) <= 1, s


def test_encode_equals_applying_merges_in_training_order(sample_tok):
    text = SAMPLE + " unseen wordings, 2024 — naïve!"
    for chunk in set(re.findall(bpe.CHUNK_PATTERN, text)):
        ids = list(chunk.encode("utf-8"))
        for k, pair in enumerate(sample_tok.merges):
            ids = bpe._merge(ids, pair, BASE_VOCAB_SIZE + k)
        assert sample_tok.encode(chunk).tolist() == ids, chunk


def test_encode_returns_int64_ids_and_compresses_training_text(sample_tok):
    ids = sample_tok.encode(SAMPLE)
    assert ids.dtype == np.int64
    assert len(ids) < len(SAMPLE.encode("utf-8")) / 2
    assert bpe.chars_per_token(sample_tok, SAMPLE) == pytest.approx(len(SAMPLE) / len(ids))
    assert sample_tok.encode("").tolist() == []


def test_save_and_load_round_trip(tmp_path, sample_tok):
    path = sample_tok.save(tmp_path / "tok.json")
    loaded = BPETokenizer.load(path)
    assert loaded.merges == sample_tok.merges
    assert np.array_equal(loaded.encode(SAMPLE), sample_tok.encode(SAMPLE))


def test_cache_reuses_trained_merges(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    first = BPETokenizer.train(SAMPLE, 320, progress=False, cache=True)
    files = list((tmp_path / "bpe").glob("*.json"))
    assert len(files) == 1 and "-320.json" in files[0].name

    def boom(*args, **kwargs):
        raise AssertionError("training ran although the merges were cached")

    monkeypatch.setattr(bpe, "_learn_merges", boom)
    assert BPETokenizer.train(SAMPLE, 320, progress=False, cache=True).merges == first.merges
    # a smaller vocabulary is served from the larger cached one
    assert BPETokenizer.train(SAMPLE, 300, progress=False, cache=True).merges == first.merges[:44]
    with pytest.raises(AssertionError):  # different text: not cached, so it would train
        BPETokenizer.train(SAMPLE + "x", 300, progress=False, cache=True)


def test_cached_tokenizer_reports_the_training_time_of_the_run_that_cached_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    first = BPETokenizer.train(SAMPLE, 320, progress=False, cache=True)
    assert first.train_seconds is not None and first.train_seconds > 0
    monkeypatch.setattr(bpe, "_learn_merges", lambda *a, **k: pytest.fail("training ran although cached"))
    again = BPETokenizer.train(SAMPLE, 320, progress=False, cache=True)
    assert again.train_seconds == first.train_seconds  # the cached run's time, not this call's
    # a vocabulary cut from a larger one does not claim the larger run's time
    assert BPETokenizer.train(SAMPLE, 300, progress=False, cache=True).train_seconds is None
    assert first.truncate(300).train_seconds is None


def test_tokenizer_saved_without_training_time_still_loads(tmp_path, sample_tok):
    d = sample_tok.to_dict()
    d.pop("train_seconds", None)  # a file written before train_seconds was recorded
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    loaded = BPETokenizer.load(path)
    assert loaded.merges == sample_tok.merges and loaded.train_seconds is None


def test_bits_per_char_converts_nats_per_token():
    # 2 tokens of 1 nat each over 4 characters = 0.5 nats/char = 0.5/ln 2 bits/char
    assert bpe.bits_per_char(1.0, 2, 4) == pytest.approx(0.5 / math.log(2))
    with pytest.raises(ValueError):
        bpe.bits_per_char(1.0, 0, 4)


def test_vocab_size_below_base_alphabet_is_rejected():
    with pytest.raises(ValueError, match="below the 256 byte tokens"):
        BPETokenizer.train(SAMPLE, 100, progress=False)
    with pytest.raises(TypeError):
        BPETokenizer.train(SAMPLE, 300.0, progress=False)


def test_empty_training_text_is_rejected():
    with pytest.raises(ValueError, match="empty text"):
        BPETokenizer.train("", 300, progress=False)
    with pytest.raises(TypeError):
        BPETokenizer.train(b"bytes", 300, progress=False)


def test_too_small_text_for_vocab_size_is_rejected():
    with pytest.raises(ValueError, match="allows only 2 merges"):
        BPETokenizer.train("abc", 300, progress=False)


def test_decode_rejects_ids_out_of_range(sample_tok):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        sample_tok.decode([1, 2, 400])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        sample_tok.decode([-1])
    with pytest.raises(TypeError):
        sample_tok.decode([1.5])
    assert sample_tok.decode([]) == ""


def test_decode_of_partial_character_does_not_fail(sample_tok):
    first_byte = "中".encode("utf-8")[0]
    assert sample_tok.decode([first_byte]) == "\ufffd"


def test_invalid_merges_are_rejected():
    with pytest.raises(ValueError, match="earlier tokens"):
        BPETokenizer([(1, 256)])
