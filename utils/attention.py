"""Attention, written out: softmax, scaled dot-product attention, masks, positions, counts.

These are the reference implementations that Chapter 3 derives with sympy and checks
against torch; later chapters use them as the ground truth (the model of Chapter 4a is
tested against :func:`attention`, :func:`count_params` and :func:`train_flops_per_token`).

Shapes follow torch: a batch of sequences is ``(..., T, d)``; weights are ``(..., T_q, T_k)``.
A mask is a ``bool`` tensor in which ``True`` means "this query may attend to this key".
"""
from __future__ import annotations

import math
from numbers import Integral

import torch

__all__ = ["softmax", "causal_mask", "attention_weights", "attention", "sinusoidal_positions",
           "apply_rope", "count_params", "matmul_params", "forward_flops_per_token",
           "train_flops_per_token", "kaplan_train_flops_per_token"]

_CONFIG_FIELDS = ("vocab_size", "n_ctx", "n_layer", "n_head", "n_embd")


# --------------------------------------------------------------------------- helpers
def _check_tensor(name: str, x, min_ndim: int = 1) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; "
                        f"wrap it with torch.as_tensor(...) first.")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
                        f"convert it with .float().")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}.")


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}.")
    return int(value)


# --------------------------------------------------------------------------- softmax
def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax of ``x`` along ``dim`` (Chapter 3, section 1).

    Returns ``exp(x - max) / sum(exp(x - max))``: the same values as the textbook formula
    (softmax is shift invariant) but without overflow for large inputs. Entries equal to
    ``-inf`` get weight 0; a slice that is entirely ``-inf`` has no valid weights and
    comes out as ``nan`` (as in torch).
    """
    _check_tensor("x", x)
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim={dim} is out of range for a tensor with {x.ndim} dimensions.")
    shift = x.amax(dim=dim, keepdim=True).detach()
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    e = torch.exp(x - shift)
    return e / e.sum(dim=dim, keepdim=True)


# --------------------------------------------------------------------------- attention
def causal_mask(T: int, device=None) -> torch.Tensor:
    """The ``(T, T)`` bool causal mask: ``True`` on and below the diagonal (Chapter 3, section 3).

    Query position ``i`` may attend to key positions ``j <= i`` only.
    """
    T = _check_positive_int("T", T)
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def _scores(q: torch.Tensor, k: torch.Tensor, mask) -> torch.Tensor:
    _check_tensor("q", q, 2)
    _check_tensor("k", k, 2)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"queries and keys must have the same last dimension d_k, got q with "
                         f"d_k={q.shape[-1]} (shape {tuple(q.shape)}) and k with d_k={k.shape[-1]} "
                         f"(shape {tuple(k.shape)}).")
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the batch dimensions of q {tuple(q.shape[:-2])} and k {tuple(k.shape[:-2])} "
                         "do not broadcast; give both the same leading shape.") from None
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is None:
        return scores
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool tensor (True = may attend), got {got}; "
                        "for example causal_mask(T).")
    try:
        shape = torch.broadcast_shapes(mask.shape, scores.shape)
    except RuntimeError:
        shape = None
    if shape != scores.shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the attention "
                         f"scores of shape {tuple(scores.shape)} (..., T_q, T_k); "
                         f"for causal attention use causal_mask({q.shape[-2]}).")
    if not mask.any(dim=-1).all():
        raise ValueError("the mask leaves at least one query with no key to attend to (a row that "
                         "is all False); every query needs at least one True entry.")
    return scores.masked_fill(~mask, float("-inf"))


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention weights ``softmax(q kᵀ / sqrt(d_k))`` of shape ``(..., T_q, T_k)`` (Chapter 3).

    ``q`` is ``(..., T_q, d_k)``, ``k`` is ``(..., T_k, d_k)``. ``mask`` (bool, ``True`` = may
    attend) must broadcast to ``(..., T_q, T_k)``; masked entries get weight exactly 0.
    Every row of the result is non-negative and sums to 1.
    """
    return softmax(_scores(q, k, mask), dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention ``softmax(q kᵀ / sqrt(d_k)) v`` (Chapter 3, section 3).

    ``q`` is ``(..., T_q, d_k)``, ``k`` is ``(..., T_k, d_k)``, ``v`` is ``(..., T_k, d_v)``;
    returns ``(..., T_q, d_v)``: each output row is a convex combination of the rows of ``v``.
    Equals ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)``.
    """
    _check_tensor("v", v, 2)
    _check_tensor("k", k, 2)
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"keys and values must have the same number of positions T_k, got "
                         f"k with {k.shape[-2]} (shape {tuple(k.shape)}) and v with {v.shape[-2]} "
                         f"(shape {tuple(v.shape)}).")
    return attention_weights(q, k, mask) @ v


# --------------------------------------------------------------------------- positions
def sinusoidal_positions(T: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """The ``(T, d)`` sinusoidal position encodings of Vaswani et al. (2017) (Chapter 3, section 6).

    ``PE[p, 2i] = sin(p ω_i)`` and ``PE[p, 2i+1] = cos(p ω_i)`` with ``ω_i = base^(-2i/d)``;
    ``d`` must be even. Returns a float32 tensor.
    """
    T = _check_positive_int("T", T)
    d = _check_positive_int("d", d)
    if d % 2:
        raise ValueError(f"sinusoidal encodings pair sines with cosines, so d must be even; got d={d}.")
    p = torch.arange(T, dtype=torch.float64)[:, None]
    omega = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.empty(T, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(p * omega)
    pe[:, 1::2] = torch.cos(p * omega)
    return pe.float()


def apply_rope(x: torch.Tensor, positions, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding (RoPE, Su et al. 2021) applied to ``x`` (Chapter 3, section 6).

    ``x`` is ``(..., T, d)`` with ``d`` even; ``positions`` holds the ``T`` positions (a 1-D
    tensor or sequence of numbers, or any shape broadcasting with ``x.shape[:-1]``). Each pair
    ``(x[2i], x[2i+1])`` at position ``m`` is rotated by the angle ``m θ_i`` with
    ``θ_i = base^(-2i/d)``. Returns a tensor of the shape and dtype of ``x``; the dot product of
    two rotated vectors depends on their positions only through the offset ``n - m``.
    """
    _check_tensor("x", x, 2)
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE rotates pairs of features, so the last dimension must be even; "
                         f"got {d} (x has shape {tuple(x.shape)}).")
    pos = torch.as_tensor(positions, device=x.device)
    if pos.ndim == 0:
        raise ValueError("positions must hold one position per row of x (a 1-D sequence of length "
                         f"T={x.shape[-2]}), got a single number {pos.item()}.")
    pos = pos.to(torch.float64)
    if pos.shape[-1] != x.shape[-2]:
        raise ValueError(f"positions has {pos.shape[-1]} entries along its last axis but x has "
                         f"T={x.shape[-2]} rows (shape {tuple(x.shape)}); give one position per row.")
    try:
        torch.broadcast_shapes(pos.shape, x.shape[:-1])
    except RuntimeError:
        raise ValueError(f"positions of shape {tuple(pos.shape)} do not broadcast with x's leading "
                         f"shape {tuple(x.shape[:-1])}.") from None
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)
    angle = pos[..., None] * theta                      # (..., T, d/2)
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


# --------------------------------------------------------------------------- counting
def _config_values(config) -> dict:
    missing = [f for f in _CONFIG_FIELDS if not hasattr(config, f)]
    if missing:
        raise TypeError(f"config of type {type(config).__name__} lacks the field(s) {missing}; it needs "
                        f"{list(_CONFIG_FIELDS)} (and optionally bias), e.g. a GPTConfig.")
    values = {f: _check_positive_int(f"config.{f}", getattr(config, f)) for f in _CONFIG_FIELDS}
    if values["n_embd"] % values["n_head"]:
        raise ValueError(f"n_embd={values['n_embd']} is not divisible by n_head={values['n_head']}; "
                         "each head needs n_embd / n_head features.")
    values["bias"] = bool(getattr(config, "bias", True))
    return values


def count_params(config, non_embedding: bool = False) -> int:
    """Exact number of parameters of the course GPT described by ``config`` (Chapter 3, section 7).

    The architecture: learned token and position embeddings, ``n_layer`` pre-LayerNorm blocks
    (attention with a fused q/k/v projection and an output projection; an MLP of width
    ``4 n_embd``), a final LayerNorm, and an output head tied to the token embedding. With
    ``d = n_embd``, one block has ``12 d² + 13 d`` parameters (``12 d² + 2 d`` with
    ``bias=False``, where LayerNorms keep only their weight). Returns the total, or with
    ``non_embedding=True`` the count ``N`` used by scaling laws (blocks + final LayerNorm).
    """
    c = _config_values(config)
    d, L = c["n_embd"], c["n_layer"]
    per_block = 12 * d * d + (13 * d if c["bias"] else 2 * d)
    non_emb = L * per_block + (2 * d if c["bias"] else d)
    if non_embedding:
        return non_emb
    return non_emb + c["vocab_size"] * d + c["n_ctx"] * d


def matmul_params(config) -> int:
    """Parameters that multiply activations in a forward pass: ``n_layer 12 d² + n_vocab d``.

    The blocks' weight matrices (``q, k, v`` and output projections, the two MLP matrices) and the
    output head (tied to the token embedding, so it is the token table used a second time). Biases,
    LayerNorm gains and the position table add no matrix multiply (Chapter 3, section 7).
    """
    c = _config_values(config)
    return 12 * c["n_layer"] * c["n_embd"] ** 2 + c["vocab_size"] * c["n_embd"]


def forward_flops_per_token(config) -> int:
    """Matrix-multiply FLOPs of one forward pass per token, counted exactly (Chapter 3, section 7).

    ``2 P + 4 n_layer n_ctx d`` with ``P`` = :func:`matmul_params` (every weight is one multiply and
    one add) and, per layer, ``QKᵀ`` and the product of the weights with ``V`` over the full
    ``n_ctx × n_ctx`` square (``2 n_ctx d`` each per token), as the model computes them before the
    mask. This is what ``torch.utils.flop_counter`` measures on a sequence of ``n_ctx`` tokens.
    """
    c = _config_values(config)
    return 2 * matmul_params(config) + 4 * c["n_layer"] * c["n_ctx"] * c["n_embd"]


def train_flops_per_token(config) -> int:
    """Training FLOPs per token, forward and backward: **the course's one FLOP count** (Chapter 3).

    ``3 ×`` :func:`forward_flops_per_token` ``= 6 P + 12 n_layer n_ctx d``: the backward pass costs
    two matrix multiplies for every one of the forward pass. This is PaLM's model-FLOPs count,
    ``6N + 12 L H Q T`` (Chowdhery et al. 2022, Appendix B; ``H Q = d``, ``T = n_ctx``), with ``N``
    read as the parameters that take part in a matrix multiply (:func:`matmul_params`, the tied
    output head included). Compute budgets, IsoFLOP profiles, MFU and the training FLOPs of a run
    all use it. For small models it is far above ``6 N D`` with ``N`` non-embedding: the head and
    the attention term are then a large share (compare :func:`kaplan_train_flops_per_token`).
    """
    return 3 * forward_flops_per_token(config)


def kaplan_train_flops_per_token(config) -> int:
    """Kaplan et al.'s (2020) training FLOPs per token: ``6 N + 6 n_layer n_ctx d`` (Chapter 3).

    Three times their Table 1 forward count ``2 N + 2 n_layer n_ctx d_attn`` with ``N`` the
    non-embedding parameters (:func:`count_params` with ``non_embedding=True``): no output head,
    and one ``2 n_ctx d`` attention term per layer. Shown beside :func:`train_flops_per_token`
    to say how far the popular ``C ≈ 6ND`` is from what small models compute.
    """
    c = _config_values(config)
    return 6 * count_params(config, non_embedding=True) + 6 * c["n_layer"] * c["n_ctx"] * c["n_embd"]
