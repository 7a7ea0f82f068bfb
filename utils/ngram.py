"""Count-based n-gram language models over token ids, written with vectorised NumPy.

An n-gram model predicts the next token from the previous ``n - 1`` tokens only: it is an
order-(n-1) Markov chain. Its probabilities are smoothed counts from the training text,

    P(x | c) = (count(c, x) + k) / (count(c) + k * n_vocab),

where ``c`` is the context, ``n_vocab`` the vocabulary size and ``k >= 0`` the add-k pseudo-count
(k = 1 is Laplace smoothing, k = 0 the unsmoothed maximum-likelihood estimate). Chapter 1
builds a bigram table by hand, then uses :class:`NGramModel` for n = 1, 2, ... to show the
"sparsity wall" that motivates neural language models.

How it is fast: every m-gram is encoded as one integer, its tokens read as the digits of a
number in base ``n_vocab + 1`` (the extra digit marks the end of the training text while
fitting). Counting is then a sort of one integer array, and looking counts up is a binary
search (``np.searchsorted``): no Python loop over positions.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["NGramModel", "bits_per_char", "perplexity", "max_order"]

_INT64_MAX = np.iinfo(np.int64).max


def bits_per_char(nats):
    """Convert a cross-entropy in nats per character to bits per character (divide by ln 2).

    Works on numbers and arrays. Chapter 1 explains the units.
    """
    out = np.asarray(nats, dtype=float) / math.log(2)
    return out if out.ndim else float(out)


def perplexity(nats):
    """Perplexity ``exp(cross-entropy)`` of a cross-entropy given in nats per token.

    The perplexity is the size of a uniform choice that is as hard to predict as the model's
    average next token: a uniform model over n_vocab tokens has perplexity n_vocab. Chapter 1.
    """
    out = np.exp(np.asarray(nats, dtype=float))
    return out if out.ndim else float(out)


def max_order(vocab_size: int) -> int:
    """The largest n for which n-gram keys in base ``vocab_size + 1`` fit in a 64-bit integer."""
    base, n = vocab_size + 1, 0
    while base ** (n + 1) <= _INT64_MAX:
        n += 1
    return n


def _as_ids(ids, vocab_size: int, name: str = "ids") -> np.ndarray:
    """``ids`` as a 1-D int64 array, checked to lie in ``0..vocab_size-1``."""
    if isinstance(ids, str):
        raise TypeError(f"{name} must be token ids (integers), not a string; encode the text first, "
                        "e.g. with utils.data.CharTokenizer.encode.")
    arr = np.asarray(ids)
    if arr.dtype == bool or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be an array of integer token ids, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False).reshape(-1) if arr.ndim <= 1 else None
    if arr is None:
        raise ValueError(f"{name} must be a 1-D sequence of token ids, got shape {np.shape(ids)}.")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        bad = int(arr[(arr < 0) | (arr >= vocab_size)][0])
        raise ValueError(f"{name} contains token id {bad}, outside the vocabulary 0..{vocab_size - 1}; "
                         "use the same tokenizer (vocab_size) for fitting and scoring.")
    return arr


def _runs(sorted_keys: np.ndarray, counts: np.ndarray | None = None):
    """Group a sorted key array: (unique keys, summed counts)."""
    if sorted_keys.size == 0:
        return sorted_keys, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    if counts is None:
        sums = np.diff(np.r_[starts, sorted_keys.size])
    else:
        sums = np.add.reduceat(counts, starts)
    return sorted_keys[starts], sums.astype(np.int64)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``values`` of ``query`` in the sorted table ``keys``; 0 where a query key is absent."""
    if keys.size == 0:
        return np.zeros(query.shape, dtype=np.int64)
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, keys.size - 1)
    return np.where(keys[pos] == query, values[pos], 0)


class NGramModel:
    """An n-gram count model with add-k smoothing over token ids ``0..vocab_size-1``.

    ``NGramModel(n, vocab_size, k=1.0).fit(train_ids)`` counts every m-gram of the training
    ids for m = 1..n. The model then conditions each prediction on **up to** ``n - 1``
    previous tokens: exactly ``n - 1`` once that many are available, and all of them
    (an m-gram estimate with m < n) at the start of a text. It is an order-(n-1) Markov chain.

    A context never seen in training gets the uniform distribution ``1/n_vocab`` (the k > 0 formula
    gives this, and we use it as the k -> 0 limit too). With ``k = 0`` a seen context
    followed by an unseen token has probability 0, so a held-out cross-entropy can be infinite.
    Chapter 1 explains all of this.
    """

    def __init__(self, n: int, vocab_size: int, k: float = 1.0):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an integer >= 1, got {n!r}.")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
            raise TypeError(f"vocab_size must be an integer >= 1, got {vocab_size!r}.")
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}.")
        if n < 1:
            raise ValueError(f"n must be >= 1 (1 = unigram, 2 = bigram, ...), got {n}.")
        if n > max_order(int(vocab_size)):
            raise ValueError(f"n={n} is too large for vocab_size={vocab_size}: n-gram keys would not fit "
                             f"in 64 bits; use n <= {max_order(int(vocab_size))}.")
        self.n = int(n)
        self.vocab_size = int(vocab_size)
        self.k = k
        self._base = self.vocab_size + 1
        self._tables = None  # per order m = 1..n: (gram keys, gram counts, context keys, context totals)
        self.n_train_tokens = 0

    @property
    def k(self) -> float:
        """The add-k pseudo-count. It is used only when probabilities are computed, so it can be
        changed after :meth:`fit` to compare smoothing strengths without counting again."""
        return self._k

    @k.setter
    def k(self, value) -> None:
        if isinstance(value, bool):
            raise TypeError(f"k must be a number >= 0, got {value!r}.")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"k must be a number >= 0, got {value!r}.") from None
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"k must be a finite number >= 0 (the add-k pseudo-count), got {value}.")
        self._k = value

    # ------------------------------------------------------------------ fitting
    def fit(self, ids) -> "NGramModel":
        """Count all m-grams (m = 1..n) of the training ids; returns ``self``.

        One sort of the n-gram keys gives every lower order too: the m-gram starting at
        position i is the first m digits of the n-gram key starting there. Padding the end
        with n-1 copies of an end marker (digit n_vocab) makes the last few m-grams exact.
        """
        ids = _as_ids(ids, self.vocab_size)
        if ids.size == 0:
            raise ValueError("cannot fit an n-gram model on an empty sequence of ids.")
        n, B, n_vocab = self.n, self._base, self.vocab_size
        padded = np.concatenate([ids, np.full(n - 1, n_vocab, dtype=np.int64)])
        N = ids.size
        keys = np.zeros(N, dtype=np.int64)
        for j in range(n):  # Horner's rule: key = ((x0 * B + x1) * B + x2) ...
            keys = keys * B + padded[j:j + N]
        keys.sort()
        level_keys, level_counts = _runs(keys)
        tables = [None] * n
        for m in range(n, 0, -1):
            if m < n:  # m-gram prefix = drop the last digit of the (m+1)-gram prefix
                level_keys, level_counts = _runs(level_keys // B, level_counts)
            real = level_keys % B != n_vocab  # an m-gram that runs into the end marker is not real
            g_keys, g_counts = level_keys[real], level_counts[real]
            c_keys, c_totals = _runs(g_keys // B, g_counts)
            tables[m - 1] = (g_keys, g_counts, c_keys, c_totals)
        self._tables = tables
        self.n_train_tokens = int(N)
        return self

    def _check_fitted(self):
        if self._tables is None:
            raise ValueError("this NGramModel is not fitted yet; call .fit(train_ids) first.")

    @property
    def num_ngrams(self) -> int:
        """Number of distinct n-grams (of the full order n) seen in training."""
        self._check_fitted()
        return int(self._tables[-1][0].size)

    @property
    def num_contexts(self) -> int:
        """Number of distinct (n-1)-token contexts seen in training (1 for a unigram model)."""
        self._check_fitted()
        return int(self._tables[-1][2].size)

    # ------------------------------------------------------------ one context
    def _context(self, context) -> np.ndarray:
        ctx = _as_ids(context if context is not None else [], self.vocab_size, "context")
        if ctx.size > self.n - 1:
            raise ValueError(f"a {self.n}-gram model conditions on at most {self.n - 1} previous tokens, "
                             f"got a context of {ctx.size}; pass only the last {self.n - 1} tokens "
                             "(context[-(n-1):]).")
        return ctx

    def next_token_counts(self, context=()) -> np.ndarray:
        """Training counts ``count(context, x)`` for every next token x: an int64 array of length n_vocab.

        ``context`` holds 0..n-1 token ids (the most recent last).
        """
        self._check_fitted()
        ctx = self._context(context)
        g_keys, g_counts, _, _ = self._tables[ctx.size]
        c = 0
        for t in ctx.tolist():
            c = c * self._base + t
        lo, hi = np.searchsorted(g_keys, [c * self._base, c * self._base + self.vocab_size])
        out = np.zeros(self.vocab_size, dtype=np.int64)
        out[g_keys[lo:hi] - c * self._base] = g_counts[lo:hi]
        return out

    def next_token_distribution(self, context=(), temperature: float = 1.0) -> np.ndarray:
        """``P(x | context)`` for every next token x (length-n_vocab float array summing to 1).

        Add-k smoothed counts; an unseen context gives the uniform distribution. With a
        ``temperature`` T != 1 the distribution is sharpened (T < 1) or flattened (T > 1):
        ``P_T(x) ∝ P(x) ** (1 / T)``.
        """
        _check_temperature(temperature)
        counts = self.next_token_counts(context).astype(float)
        total = counts.sum()
        if total + self.k * self.vocab_size == 0:  # unseen context with k = 0: use the k -> 0 limit
            probs = np.full(self.vocab_size, 1.0 / self.vocab_size)
        else:
            probs = (counts + self.k) / (total + self.k * self.vocab_size)
        if temperature != 1.0:
            with np.errstate(divide="ignore"):
                logits = np.log(probs) / temperature
            logits -= logits.max()
            probs = np.exp(logits)
            probs /= probs.sum()
        return probs

    def prob(self, token: int, context=()) -> float:
        """``P(token | context)``: one probability from :meth:`next_token_distribution`."""
        token = int(_as_ids([token], self.vocab_size, "token")[0])
        return float(self.next_token_distribution(context)[token])

    # ------------------------------------------------------------ a whole text
    def log_probs(self, ids) -> np.ndarray:
        """Natural-log probability of every token of ``ids`` given up to n-1 tokens before it.

        Returns a float array of the same length as ``ids``. Position i is predicted from
        ``ids[max(0, i-n+1):i]``, so the first n-1 positions use the shorter context that
        exists (position 0 uses the unigram distribution). ``-inf`` marks a zero probability
        (possible only with k = 0).
        """
        self._check_fitted()
        ids = _as_ids(ids, self.vocab_size)
        out = np.empty(ids.size, dtype=float)
        for m in range(1, self.n + 1):  # m = order used; positions with m-1 tokens of context
            if m < self.n:
                pos = np.arange(m - 1, min(m, ids.size))  # the single position m-1 (if it exists)
            else:
                pos = np.arange(self.n - 1, ids.size)
            if pos.size == 0:
                continue
            gram = np.zeros(pos.size, dtype=np.int64)
            for j in range(m):
                gram = gram * self._base + ids[pos - m + 1 + j]
            g_keys, g_counts, c_keys, c_totals = self._tables[m - 1]
            c = _lookup(g_keys, g_counts, gram).astype(float)
            total = _lookup(c_keys, c_totals, gram // self._base).astype(float)
            denom = total + self.k * self.vocab_size
            with np.errstate(divide="ignore", invalid="ignore"):
                p = np.where(denom > 0, (c + self.k) / np.where(denom > 0, denom, 1.0), 1.0 / self.vocab_size)
                out[pos] = np.log(p)
        return out

    def cross_entropy(self, ids) -> float:
        """Mean negative log-likelihood of ``ids``, in **nats per token** (see :meth:`log_probs`).

        Every position is scored, each with up to n-1 tokens of context (the first n-1
        positions with fewer). Returns ``inf`` if some token has probability 0 (k = 0).
        """
        ids = _as_ids(ids, self.vocab_size)
        if ids.size == 0:
            raise ValueError("cannot compute a cross-entropy over an empty sequence of ids.")
        return float(-self.log_probs(ids).mean())

    def context_seen(self, ids) -> np.ndarray:
        """For each position of ``ids`` that has a full n-1 token context (positions n-1, n, ...):
        did that context occur in training? Returns a boolean array of length ``len(ids) - n + 1``,
        aligned with ``log_probs(ids)[n - 1:]``. Where it is False the model can only guess
        uniformly. A unigram model has the empty context, always seen. Chapter 1 splits the
        validation loss by it.
        """
        self._check_fitted()
        ids = _as_ids(ids, self.vocab_size)
        if ids.size < self.n:
            raise ValueError(f"need at least n={self.n} ids to have a full context, got {ids.size}.")
        N = ids.size - self.n + 1
        if self.n == 1:
            return np.ones(N, dtype=bool)
        ctx = np.zeros(N, dtype=np.int64)
        for j in range(self.n - 1):
            ctx = ctx * self._base + ids[j:j + N]
        c_keys, c_totals = self._tables[-1][2], self._tables[-1][3]
        return _lookup(c_keys, c_totals, ctx) > 0

    def unseen_context_fraction(self, ids) -> float:
        """Fraction of positions of ``ids`` (those with a full n-1 token context) whose context
        never occurred in training, so the model can only guess uniformly there
        (``1 - mean(context_seen(ids))``).
        """
        if self.n == 1:
            return 0.0
        return float(1.0 - np.mean(self.context_seen(ids)))

    # ----------------------------------------------------------------- sampling
    def sample(self, n_tokens: int, temperature: float = 1.0, seed: int | None = None, prompt=()) -> np.ndarray:
        """Generate ``n_tokens`` new token ids after ``prompt``; returns only the new ids.

        Each token is drawn from :meth:`next_token_distribution` of the last n-1 tokens so far
        (prompt included) at the given ``temperature``. The same ``seed`` gives the same sample.
        """
        self._check_fitted()
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, (int, np.integer)):
            raise TypeError(f"n_tokens must be an integer >= 0, got {n_tokens!r}.")
        if n_tokens < 0:
            raise ValueError(f"n_tokens must be an integer >= 0, got {n_tokens}.")
        _check_temperature(temperature)
        history = _as_ids(prompt if prompt is not None else [], self.vocab_size, "prompt").tolist()
        rng = np.random.default_rng(seed)
        out = []
        width = self.n - 1
        for _ in range(int(n_tokens)):
            ctx = history[-width:] if width else []
            p = self.next_token_distribution(ctx, temperature)
            nxt = int(rng.choice(self.vocab_size, p=p))
            history.append(nxt)
            out.append(nxt)
        return np.asarray(out, dtype=np.int64)

    def __repr__(self) -> str:
        state = f"fitted on {self.n_train_tokens:,} tokens" if self._tables is not None else "not fitted"
        return f"NGramModel(n={self.n}, vocab_size={self.vocab_size}, k={self.k:g}; {state})"


def _check_temperature(temperature) -> None:
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TypeError(f"temperature must be a positive number, got {temperature!r}.") from None
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"temperature must be a finite number > 0 (1 = the model's own distribution; "
                         f"smaller is greedier), got {temperature}.")
