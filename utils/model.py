"""A small GPT: the decoder-only Transformer of GPT-2, written out in plain PyTorch.

Chapter 4a builds it piece by piece: token and learned position embeddings, a stack of
pre-LayerNorm blocks (causal multi-head self-attention, then a 4x-wide GELU MLP, each
added back onto the residual stream), a final LayerNorm, and an output head that shares
its weights with the token embedding {cite}`radford2019language`. Chapter 3 derives the
parameter count and the FLOPs per token that :meth:`GPT.num_params` and
:meth:`GPT.train_flops_per_token` return.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import train_flops_per_token

__all__ = ["GPTConfig", "GPT"]


def dataclass_from_dict(cls, d: dict):
    """``cls(**d)`` for a configuration dataclass, refusing keys that are not its fields."""
    names = {f.name for f in fields(cls)}
    extra = set(d) - names
    if extra:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(extra)}; expected some of {sorted(names)}.")
    return cls(**d)


@dataclass
class GPTConfig:
    """The shape of a GPT; checked when it is made.

    ``vocab_size`` tokens, a context of ``n_ctx`` tokens, ``n_layer`` blocks of width
    ``n_embd`` with ``n_head`` attention heads (``n_embd`` must be divisible by
    ``n_head``), dropout probability ``dropout`` and whether linear layers and
    LayerNorms have biases (``bias``). Chapter 4a explains every field.
    """

    vocab_size: int
    n_ctx: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "n_ctx", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                    setattr(self, name, value)
                else:
                    raise TypeError(f"GPTConfig.{name} must be an integer, got {value!r} "
                                    f"({type(value).__name__}).")
            if value < 1:
                raise ValueError(f"GPTConfig.{name} must be at least 1, got {value}.")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) so that every "
                f"head gets the same width; try n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))} "
                f"or an n_head that divides {self.n_embd}."
            )
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout!r}.")
        self.dropout = float(self.dropout)
        if not isinstance(self.bias, bool):
            raise TypeError(f"bias must be True or False, got {self.bias!r}.")

    @property
    def head_dim(self) -> int:
        """Width of one attention head, ``n_embd // n_head``."""
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        """The configuration as a plain ``dict`` (for JSON and checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        """Rebuild a configuration from :meth:`to_dict`'s output (unknown keys raise ``ValueError``)."""
        return dataclass_from_dict(cls, d)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position ``t`` sees only positions ``<= t``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.proj.is_residual_projection = True
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(self.n_embd, dim=2)
        # (B, T, C) -> (B, n_head, T, head_dim)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward network: ``d -> 4d -> GELU -> d``.

    GELU in its exact form, ``x * Phi(x)`` {cite}`hendrycks2016gaussian`; GPT-2 used a tanh
    approximation of it, which PyTorch computes about twice as slowly on the CPU.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.proj.is_residual_projection = True
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """One pre-LayerNorm Transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A GPT-2-style decoder-only Transformer language model (Chapter 4a).

    ``GPT(config)`` builds the model with GPT-2's initialisation: weights normal with
    standard deviation 0.02, biases zero, and the two residual projections of every block
    scaled down by ``1/sqrt(2 n_layer)`` so the residual stream does not grow with depth.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}; "
                            "build one with GPTConfig(vocab_size=..., n_ctx=..., n_layer=..., n_head=..., n_embd=...).")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embedding (also the output head)
        self.wpe = nn.Embedding(config.n_ctx, config.n_embd)  # learned positions
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.register_buffer("pos", torch.arange(config.n_ctx), persistent=False)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "is_residual_projection", False):
                std = 0.02 / math.sqrt(2 * self.config.n_layer)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Return ``(logits, loss)`` for a batch of token ids ``idx`` of shape ``(B, T)``.

        ``logits`` has shape ``(B, T, vocab_size)``: at position ``t`` the scores for the
        token that follows ``idx[:, :t+1]``. ``loss`` is the mean cross-entropy in nats
        per token against ``targets`` (same shape as ``idx``), or ``None`` without targets.
        ``T`` may not exceed ``n_ctx``.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (batch, time), got shape {tuple(idx.shape)}; "
                             "add a batch dimension with idx[None].")
        T = idx.shape[1]
        if T > self.config.n_ctx:
            raise ValueError(f"sequence of length {T} is longer than the context n_ctx={self.config.n_ctx}; "
                             f"crop it to the last {self.config.n_ctx} tokens.")
        x = self.drop(self.wte(idx) + self.wpe(self.pos[:T]))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        logits = F.linear(x, self.wte.weight)  # output head tied to the token embedding
        loss = None
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, "
                                 f"got {tuple(targets.shape)}.")
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters, counted from the tensors (the shared head counted once).

        With ``non_embedding=True`` (the count ``N`` of the scaling laws) the token and
        position embeddings are left out. Equals ``utils.attention.count_params`` (Chapter 3's
        formula: ``n_layer (12 d^2 + 13 d) + 2 d`` with biases).
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel() + self.wpe.weight.numel()
        return n

    def train_flops_per_token(self) -> int:
        """Training FLOPs per token (forward and backward) of this model's shape: the course's one count,
        :func:`utils.attention.train_flops_per_token` (``6 P + 12 n_layer n_ctx d``, Chapter 3)."""
        return train_flops_per_token(self.config)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend ``idx`` (shape ``(B, T)``) by ``max_new_tokens`` sampled tokens; return ``(B, T + new)``.

        Each new token is drawn from ``softmax(logits / temperature)`` restricted to the
        ``top_k`` most likely tokens when ``top_k`` is given; ``temperature=0`` picks the
        most likely token. Only the last ``n_ctx`` tokens are fed to the model. Chapters 4a and 4b
        sample text with it.
        """
        if idx.dim() == 1:
            raise ValueError(f"idx must have shape (batch, time), got shape {tuple(idx.shape)}; "
                             "add a batch dimension with idx[None].")
        if int(max_new_tokens) != max_new_tokens or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}.")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}.")
        if top_k is not None and not 1 <= int(top_k):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}.")
        was_training = self.training
        self.eval()
        try:
            for _ in range(int(max_new_tokens)):
                context = idx[:, -self.config.n_ctx:]
                logits, _ = self(context)
                logits = logits[:, -1, :].float()
                if temperature == 0:
                    nxt = logits.argmax(dim=-1, keepdim=True)
                else:
                    logits = logits / temperature
                    if top_k is not None:
                        k = min(int(top_k), logits.size(-1))
                        kth = torch.topk(logits, k, dim=-1).values[:, -1:]
                        logits = logits.masked_fill(logits < kth, float("-inf"))
                    probs = F.softmax(logits, dim=-1)
                    nxt = torch.multinomial(probs, num_samples=1, generator=generator)
                idx = torch.cat([idx, nxt.to(idx.dtype)], dim=1)
        finally:
            self.train(was_training)
        return idx
