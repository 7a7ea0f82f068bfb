"""Byte-pair encoding (BPE) trained from scratch, on bytes, so that any string round-trips.

The base alphabet is the 256 possible bytes of UTF-8, so ``decode(encode(s)) == s`` for
every Python string, including characters the training text never contained (byte-level
BPE, as in GPT-2: Radford et al. 2019). The merge loop is Sennrich et al.'s (2016):
repeatedly merge the most frequent adjacent pair of tokens, never across a chunk boundary.
The chunks are GPT-2's, not Sennrich's: Sennrich et al. split the text at white space and
marked the end of each word with a special symbol (``</w>`` in their released code), while
GPT-2 cuts it with a regular expression into words that carry their leading space, runs of
digits, runs of punctuation and runs of white space. :data:`CHUNK_PATTERN` is a simplified
form of GPT-2's pattern (without its special cases for English contractions such as "'s").
Chapter 2 builds the idea step by step and measures compression on the corpus.

Training is fast because it works on *unique* chunks weighted by their counts and, after
each merge, updates pair counts only for the chunks that contained the merged pair.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import math
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from . import runtime
from .runtime import cache_dir

#: Bump when training or chunking changes, so cached merges are retrained. (The optional
#: ``train_seconds`` field of a saved tokenizer does not change the format: files written
#: without it still load, with ``train_seconds = None``.)
ALGORITHM_VERSION = 1
#: Number of base tokens: one per byte value.
BASE_VOCAB_SIZE = 256
#: How text is cut into chunks before merging: a word (letters) with an optional leading
#: space, a number, a run of other symbols (optional leading space), or white space. White
#: space before a word is left to the word, so " the" is one chunk. Every character of any
#: string belongs to exactly one chunk, so joining the chunks gives the text back. This is
#: GPT-2's pre-tokenisation pattern (its released ``encoder.py``) without the alternatives
#: for English contractions ('s, 't, 're, 've, 'm, 'll, 'd).
CHUNK_PATTERN = r" ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"

_CACHE_LIMIT = 500_000  # unique chunks remembered by encode() before the cache is cleared


def _to_bytes(text: str) -> bytes:
    # surrogatepass: even a lone surrogate (valid in a Python str) survives the round trip
    return text.encode("utf-8", "surrogatepass")


def _merge(ids, pair, new_id):
    """``ids`` with every occurrence of ``pair`` (left to right, no overlaps) replaced by ``new_id``."""
    a, b = pair
    out = []
    i, n = 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def text_fingerprint(text: str) -> str:
    """A short hash (16 hex digits) of ``text``, used to key cached tokenizers."""
    return hashlib.sha256(_to_bytes(text)).hexdigest()[:16]


def _check_vocab_size(vocab_size) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise TypeError(f"vocab_size must be an integer, got {type(vocab_size).__name__} {vocab_size!r}.")
    if vocab_size < BASE_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is below the {BASE_VOCAB_SIZE} byte tokens every byte-level BPE "
            f"starts with; choose vocab_size >= {BASE_VOCAB_SIZE} (the number of merges is "
            f"vocab_size - {BASE_VOCAB_SIZE})."
        )
    return int(vocab_size)


class BPETokenizer:
    """A byte-level BPE tokenizer: 256 byte tokens plus one token per learned merge.

    Token ``256 + k`` is made by merge ``k``, the pair ``merges[k]`` of earlier tokens.
    Build one with :meth:`train` (or :meth:`load`); ``encode`` returns an ``int64`` array
    like :class:`utils.data.CharTokenizer`, and ``decode(encode(s)) == s`` for every string.
    ``train_seconds`` is the wall-clock time :meth:`train` took to learn these merges, kept
    in the saved file so that a tokenizer read from the cache still reports the training
    run that made it; it is ``None`` when unknown (merges passed in by hand, a file saved
    without it, or a tokenizer cut from a larger one by :meth:`truncate`).
    Chapter 2 explains it.
    """

    def __init__(self, merges=(), pattern: str = CHUNK_PATTERN, train_seconds: float | None = None):
        merges = [tuple(int(t) for t in m) for m in merges]
        vocab = [bytes([i]) for i in range(BASE_VOCAB_SIZE)]
        for k, m in enumerate(merges):
            new_id = BASE_VOCAB_SIZE + k
            if len(m) != 2 or not all(0 <= t < new_id for t in m):
                raise ValueError(
                    f"merge {k} is {m!r}; each merge must be a pair of ids of earlier tokens (0..{new_id - 1})."
                )
            vocab.append(vocab[m[0]] + vocab[m[1]])
        self.merges: list[tuple[int, int]] = merges
        self.pattern = pattern
        self._regex = re.compile(pattern)
        self._vocab = vocab
        self._ranks = {m: BASE_VOCAB_SIZE + k for k, m in enumerate(merges)}
        self._cache: dict[str, tuple[int, ...]] = {}
        self.train_seconds: float | None = None if train_seconds is None else float(train_seconds)

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, text: str, vocab_size: int, progress: bool = True, cache: bool = False) -> "BPETokenizer":
        """Learn ``vocab_size - 256`` merges from ``text`` and return the tokenizer.

        Ties between equally frequent pairs go to the smallest pair ``(a, b)``, so training
        is deterministic. With ``cache=True`` the merges are stored in
        ``runtime.cache_dir('bpe')`` keyed by vocabulary size, a fingerprint of ``text`` and
        :data:`ALGORITHM_VERSION`; a later call reuses them (or the first merges of a larger
        cached vocabulary, which are the same). ``progress`` shows a tqdm bar over merges.
        The returned tokenizer's ``train_seconds`` is the time this call spent learning the
        merges or, for a tokenizer read from the cache, the time recorded by the call that
        wrote it.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}.")
        if not text:
            raise ValueError("cannot train BPE on an empty text; pass the training text (e.g. data.corpus_text()).")
        vocab_size = _check_vocab_size(vocab_size)
        if cache:
            found = _load_cached(text, vocab_size)
            if found is not None:
                return found
        start = time.perf_counter()
        merges = _learn_merges(text, vocab_size - BASE_VOCAB_SIZE, CHUNK_PATTERN, progress)
        tok = cls(merges, train_seconds=time.perf_counter() - start)
        if cache:
            tok.save(_cache_path(text, vocab_size))
        return tok

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """256 byte tokens plus one per merge."""
        return len(self._vocab)

    @property
    def vocab(self) -> list[bytes]:
        """The bytes of every token, indexed by id."""
        return list(self._vocab)

    def token_str(self, token_id: int) -> str:
        """A readable form of one token (undecodable partial characters shown as �)."""
        return self._vocab[self._check_ids([token_id])[0]].decode("utf-8", "replace")

    def truncate(self, vocab_size: int) -> "BPETokenizer":
        """The tokenizer made of the first ``vocab_size - 256`` merges only.

        Because training is greedy, this is exactly what training with the smaller
        ``vocab_size`` on the same text would give. Its ``train_seconds`` is ``None``: the
        time recorded for the larger vocabulary is not the time the smaller one needs.
        """
        vocab_size = _check_vocab_size(vocab_size)
        if vocab_size > self.vocab_size:
            raise ValueError(f"cannot truncate a vocabulary of {self.vocab_size} tokens to {vocab_size}; "
                             "train a larger tokenizer instead.")
        return type(self)(self.merges[: vocab_size - BASE_VOCAB_SIZE], self.pattern)

    # ------------------------------------------------------------------ encode / decode
    def chunks(self, text: str) -> list[str]:
        """The chunks ``text`` is cut into before merging; ``"".join(chunks) == text``."""
        return self._regex.findall(text)

    def _encode_chunk(self, chunk: str) -> tuple[int, ...]:
        ids = list(_to_bytes(chunk))
        ranks = self._ranks
        while len(ids) > 1:
            # the earliest-learned merge present in this chunk is the one training applied first
            best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, math.inf))
            if best not in ranks:
                break
            ids = _merge(ids, best, ranks[best])
        return tuple(ids)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (``int64`` array) of ``text``: each chunk encoded once, then looked up."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}; decode turns ids back into text.")
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        out: list[int] = []
        for chunk in self._regex.findall(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = cache[chunk] = self._encode_chunk(chunk)
            out.extend(ids)
        return np.array(out, dtype=np.int64)

    def _check_ids(self, ids) -> list[int]:
        arr = np.asarray(ids)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"token ids must be integers, got an array of dtype {arr.dtype}.")
        arr = arr.astype(np.int64).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            bad = int(arr[(arr < 0) | (arr >= self.vocab_size)][0])
            raise ValueError(f"token id {bad} is outside the vocabulary (0..{self.vocab_size - 1}).")
        return arr.tolist()

    def decode(self, ids) -> str:
        """The text of a sequence of token ids.

        Exact inverse of :meth:`encode`. Ids whose bytes are not valid UTF-8 (e.g. half of
        a multi-byte character) decode to � instead of failing; an id outside the
        vocabulary raises ``ValueError``.
        """
        data = b"".join(self._vocab[i] for i in self._check_ids(ids))
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """The tokenizer as a JSON-ready dict (what :meth:`save` writes)."""
        d = {"format": "utils.bpe", "algorithm_version": ALGORITHM_VERSION, "pattern": self.pattern,
             "vocab_size": self.vocab_size, "merges": [list(m) for m in self.merges]}
        if self.train_seconds is not None:
            d["train_seconds"] = self.train_seconds
        return d

    def save(self, path) -> Path:
        """Write the tokenizer as JSON (pattern, merges and, if known, training time); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "BPETokenizer":
        """Read a tokenizer written by :meth:`save` (``train_seconds`` is ``None`` if the file has none)."""
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        if d.get("format") != "utils.bpe":
            raise ValueError(f"{path} is not a tokenizer saved by utils.bpe (format={d.get('format')!r}).")
        return cls(d["merges"], d.get("pattern", CHUNK_PATTERN), train_seconds=d.get("train_seconds"))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"


def _learn_merges(text: str, n_merges: int, pattern: str, progress: bool) -> list[tuple[int, int]]:
    """The first ``n_merges`` merges of BPE on ``text`` (see the module docstring)."""
    from tqdm import tqdm

    counts = Counter(re.findall(pattern, text))
    words = [list(_to_bytes(w)) for w in counts]
    freqs = list(counts.values())

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks that (may) contain it
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_counts[p] += freqs[i]
            where[p].add(i)
    # max-heap by count, ties to the smallest pair; stale entries are skipped when popped
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    bar = tqdm(total=n_merges, desc="BPE merges", disable=not (progress and runtime.progress_bars()), leave=False, mininterval=0.5)
    for k in range(n_merges):
        while heap and pair_counts.get(heap[0][1], 0) != -heap[0][0]:
            heapq.heappop(heap)
        if not heap:
            bar.close()
            raise ValueError(
                f"the training text allows only {k} merges (no adjacent pairs are left inside chunks), "
                f"so vocab_size can be at most {BASE_VOCAB_SIZE + k}; use a smaller vocab_size or more text."
            )
        _, pair = heapq.heappop(heap)
        new_id = BASE_VOCAB_SIZE + k
        merges.append(pair)
        changed = set()
        for i in where.pop(pair):
            w = words[i]
            new_w = _merge(w, pair, new_id)
            if len(new_w) == len(w):
                continue  # stale entry: this chunk no longer holds the pair
            f = freqs[i]
            for q in zip(w, w[1:]):
                pair_counts[q] -= f
                changed.add(q)
            for q in zip(new_w, new_w[1:]):
                pair_counts[q] += f
                where[q].add(i)
                changed.add(q)
            words[i] = new_w
        for q in changed:
            c = pair_counts[q]
            if c > 0:
                heapq.heappush(heap, (-c, q))
            else:
                del pair_counts[q]
        bar.update(1)
    bar.close()
    return merges


def _cache_path(text: str, vocab_size: int) -> Path:
    return cache_dir("bpe") / f"bpe-v{ALGORITHM_VERSION}-{text_fingerprint(text)}-{vocab_size}.json"


def _load_cached(text: str, vocab_size: int):
    exact = _cache_path(text, vocab_size)
    if exact.exists():
        return BPETokenizer.load(exact)
    prefix = f"bpe-v{ALGORITHM_VERSION}-{text_fingerprint(text)}-"
    for p in sorted(exact.parent.glob(prefix + "*.json")):
        size = p.stem[len(prefix):]
        if size.isdigit() and int(size) > vocab_size:
            return BPETokenizer.load(p).truncate(vocab_size)
    return None


def chars_per_token(tokenizer, text: str) -> float:
    """Compression of ``text`` by ``tokenizer``: characters divided by tokens (Chapter 2)."""
    n = len(tokenizer.encode(text))
    if n == 0:
        raise ValueError("cannot measure compression of an empty text.")
    return len(text) / n


def bits_per_char(loss_per_token: float, n_tokens: int, n_chars: int) -> float:
    """Convert a mean loss in nats per token into bits per character.

    ``loss_per_token * n_tokens`` is the total code length of the text in nats; dividing by
    the number of characters and by ln 2 gives bits per character, a unit that does not
    depend on the tokenizer (Chapter 2).
    """
    if n_tokens <= 0 or n_chars <= 0:
        raise ValueError(f"n_tokens and n_chars must be positive, got {n_tokens} and {n_chars}.")
    return loss_per_token * n_tokens / n_chars / math.log(2)
