"""Tests for utils.attention: each reference implementation against torch, plus the error cases."""
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils import attention as A


def _rand(*shape, seed=0, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(requires_grad)


# --------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_matches_torch_values_and_gradients(dim):
    x = _rand(3, 5, 7, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    g = _rand(3, 5, 7, seed=1)
    ours, ref = A.softmax(x, dim=dim), torch.softmax(x_ref, dim=dim)
    torch.testing.assert_close(ours, ref)
    (ours * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_softmax_survives_inputs_that_overflow_exp():
    x = torch.tensor([1000.0, 1001.0, 1002.0])
    assert torch.isnan(torch.exp(x) / torch.exp(x).sum()).all()  # the naive formula fails
    torch.testing.assert_close(A.softmax(x), torch.softmax(torch.tensor([0.0, 1.0, 2.0]), -1))


def test_softmax_gives_zero_weight_to_minus_infinity():
    x = torch.tensor([0.0, float("-inf"), 1.0])
    p = A.softmax(x)
    assert p[1] == 0 and torch.isclose(p.sum(), torch.tensor(1.0))


def test_softmax_rejects_non_tensors_integer_tensors_and_bad_dim():
    with pytest.raises(TypeError, match="torch.Tensor"):
        A.softmax([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        A.softmax(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        A.softmax(torch.zeros(2, 3), dim=2)


# --------------------------------------------------------------------------- attention
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_torch_sdpa_values_and_gradients(causal):
    q, k, v = (_rand(2, 3, 6, 8, seed=s, requires_grad=True) for s in range(3))
    refs = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    mask = A.causal_mask(6) if causal else None
    ours = A.attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(*refs, is_causal=causal)
    torch.testing.assert_close(ours, ref)
    g = _rand(*ours.shape, seed=9)
    (ours * g).sum().backward()
    (ref * g).sum().backward()
    for mine, theirs in zip((q, k, v), refs):
        torch.testing.assert_close(mine.grad, theirs.grad)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_passes_numerical_gradient_check(causal):
    q, k, v = (_rand(2, 4, 3, seed=s, requires_grad=True) for s in range(3))
    mask = A.causal_mask(4) if causal else None
    assert torch.autograd.gradcheck(lambda a, b, c: A.attention(a, b, c, mask=mask), (q, k, v))


def test_attention_with_general_bool_mask_and_different_lengths_matches_sdpa():
    q, k, v = _rand(2, 4, 5, seed=1), _rand(2, 7, 5, seed=2), _rand(2, 7, 3, seed=3)
    mask = _rand(4, 7, seed=4) > 0
    mask[:, 0] = True  # every query keeps at least one key
    torch.testing.assert_close(A.attention(q, k, v, mask),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_attention_weights_are_convex_and_zero_where_masked():
    w = A.attention_weights(_rand(1, 5, 4), _rand(1, 5, 4, seed=1), A.causal_mask(5))
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 5, dtype=w.dtype))
    assert (w[0][~A.causal_mask(5)] == 0).all()


def test_causal_mask_is_lower_triangular_bool():
    m = A.causal_mask(4)
    assert m.dtype == torch.bool
    assert torch.equal(m, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]).bool())
    with pytest.raises(ValueError, match="positive"):
        A.causal_mask(0)
    with pytest.raises(TypeError, match="integer"):
        A.causal_mask(3.0)


def test_attention_rejects_mismatched_shapes_and_bad_masks():
    q, k, v = _rand(5, 4), _rand(5, 4), _rand(5, 3)
    with pytest.raises(ValueError, match="same last dimension d_k"):
        A.attention(q, _rand(5, 3), v)
    with pytest.raises(ValueError, match="same number of positions"):
        A.attention(q, k, _rand(6, 3))
    with pytest.raises(ValueError, match="does not broadcast"):
        A.attention(q, k, v, mask=A.causal_mask(4))
    with pytest.raises(TypeError, match="bool tensor"):
        A.attention(q, k, v, mask=A.causal_mask(5).float())
    with pytest.raises(ValueError, match="no key to attend"):
        A.attention(q, k, v, mask=torch.zeros(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        A.attention(torch.zeros(4), k, v)
    with pytest.raises(ValueError, match="batch dimensions"):
        A.attention(_rand(2, 5, 4), _rand(3, 5, 4), _rand(3, 5, 3))


# --------------------------------------------------------------------------- positions
def test_sinusoidal_positions_follow_the_formula():
    T, d = 7, 6
    pe = A.sinusoidal_positions(T, d)
    assert pe.shape == (T, d) and pe.dtype == torch.float32
    for p in range(T):
        for i in range(d // 2):
            w = 10000 ** (-2 * i / d)
            assert math.isclose(pe[p, 2 * i].item(), math.sin(p * w), abs_tol=1e-6)
            assert math.isclose(pe[p, 2 * i + 1].item(), math.cos(p * w), abs_tol=1e-6)


def test_sinusoidal_shift_is_a_rotation_of_each_pair():
    T, d, k = 20, 8, 3
    pe = A.sinusoidal_positions(T, d).double()
    for i in range(d // 2):
        w = 10000 ** (-2 * i / d)
        R = torch.tensor([[math.cos(w * k), math.sin(w * k)], [-math.sin(w * k), math.cos(w * k)]],
                         dtype=torch.float64)
        torch.testing.assert_close(pe[k:, 2 * i:2 * i + 2], pe[:-k, 2 * i:2 * i + 2] @ R.T,
                                   atol=1e-6, rtol=1e-6)


def test_sinusoidal_positions_reject_odd_width():
    with pytest.raises(ValueError, match="even"):
        A.sinusoidal_positions(4, 5)


def test_rope_matches_complex_multiplication_and_keeps_gradients():
    x = _rand(2, 6, 8, requires_grad=True)
    pos = torch.arange(6)
    out = A.apply_rope(x, pos)
    theta = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    z = torch.view_as_complex(x.detach().reshape(2, 6, 4, 2).contiguous())
    ref = torch.view_as_real(z * torch.polar(torch.ones(6, 4, dtype=torch.float64),
                                             pos[:, None] * theta)).flatten(-2)
    torch.testing.assert_close(out, ref)
    out.pow(2).sum().backward()  # rotation preserves the norm, so d|Rx|²/dx = 2x
    torch.testing.assert_close(x.grad, 2 * x.detach())


def test_rope_scores_depend_only_on_relative_offset():
    q, k = _rand(1, 16, seed=1), _rand(1, 16, seed=2)
    def score(m, n):
        return (A.apply_rope(q, [m]) * A.apply_rope(k, [n])).sum()
    torch.testing.assert_close(score(3, 10), score(103, 110))
    torch.testing.assert_close(score(0, 0), (q * k).sum())


def test_rope_rejects_odd_width_and_wrong_number_of_positions():
    with pytest.raises(ValueError, match="even"):
        A.apply_rope(torch.zeros(4, 5), torch.arange(4))
    with pytest.raises(ValueError, match="one position per row"):
        A.apply_rope(torch.zeros(4, 6), torch.arange(3))
    with pytest.raises(ValueError, match="one position per row"):
        A.apply_rope(torch.zeros(4, 6), 2)


# --------------------------------------------------------------------------- counting
@dataclass
class Cfg:
    vocab_size: int = 65
    n_ctx: int = 32
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 32
    dropout: float = 0.0
    bias: bool = True


class _Block(nn.Module):
    """A pre-LN block built to the brief: fused q/k/v, output projection, MLP of width 4d."""

    def __init__(self, d, bias):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, bias=bias)
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)
        self.c_proj = nn.Linear(d, d, bias=bias)
        self.ln_2 = nn.LayerNorm(d, bias=bias)
        self.c_fc = nn.Linear(d, 4 * d, bias=bias)
        self.mlp_proj = nn.Linear(4 * d, d, bias=bias)


class _GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.n_ctx, c.n_embd)
        self.blocks = nn.ModuleList(_Block(c.n_embd, c.bias) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied


@pytest.mark.parametrize("cfg", [Cfg(), Cfg(bias=False), Cfg(vocab_size=100, n_ctx=64, n_layer=3, n_head=2, n_embd=48),
                                 Cfg(vocab_size=100, n_ctx=64, n_layer=3, n_head=2, n_embd=48, bias=False),
                                 Cfg(vocab_size=7, n_ctx=5, n_layer=1, n_head=1, n_embd=8)])
def test_count_params_matches_torch_model_built_to_the_brief(cfg):
    model = _GPT(cfg)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.wte.weight.numel() + model.wpe.weight.numel()
    assert A.count_params(cfg) == total
    assert A.count_params(cfg, non_embedding=True) == total - embedding


def test_count_params_reproduces_gpt2_small():
    gpt2 = Cfg(vocab_size=50257, n_ctx=1024, n_layer=12, n_head=12, n_embd=768)
    assert A.count_params(gpt2) == 124_439_808


def test_count_params_does_not_depend_on_head_count():
    assert len({A.count_params(Cfg(n_head=h)) for h in (1, 2, 4, 8)}) == 1


FLOP_CONFIGS = [Cfg(), Cfg(bias=False), Cfg(vocab_size=100, n_ctx=64, n_layer=3, n_head=2, n_embd=48),
                Cfg(vocab_size=7, n_ctx=5, n_layer=1, n_head=1, n_embd=8, bias=False)]


@pytest.mark.parametrize("cfg", FLOP_CONFIGS)
def test_matmul_params_are_the_block_matrices_and_the_tied_head(cfg):
    model = _GPT(cfg)
    in_matmuls = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    assert A.matmul_params(cfg) == in_matmuls  # the tied head's weight is the token table, counted here


@pytest.mark.parametrize("cfg", FLOP_CONFIGS)
def test_forward_flops_are_two_per_matmul_weight_plus_the_full_attention_square(cfg):
    d, L, T = cfg.n_embd, cfg.n_layer, cfg.n_ctx
    assert A.forward_flops_per_token(cfg) == 2 * (12 * L * d * d + cfg.vocab_size * d) + 2 * 2 * L * T * d


@pytest.mark.parametrize("cfg", FLOP_CONFIGS)
def test_train_flops_are_palms_6n_plus_12_lhqt_and_three_forward_passes(cfg):
    L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.n_ctx
    assert A.train_flops_per_token(cfg) == 6 * A.matmul_params(cfg) + 12 * L * H * Q * T
    assert A.train_flops_per_token(cfg) == 3 * A.forward_flops_per_token(cfg)


@pytest.mark.parametrize("cfg", FLOP_CONFIGS)
def test_kaplan_train_flops_are_three_times_their_table_1_forward_count(cfg):
    n = A.count_params(cfg, non_embedding=True)
    assert A.kaplan_train_flops_per_token(cfg) == 3 * (2 * n + 2 * cfg.n_layer * cfg.n_ctx * cfg.n_embd)


def test_flop_counts_of_gpt2_small_match_hand_arithmetic():
    gpt2 = Cfg(vocab_size=50257, n_ctx=1024, n_layer=12, n_head=12, n_embd=768)
    assert A.matmul_params(gpt2) == 12 * 12 * 768**2 + 50257 * 768 == 123_532_032
    assert A.forward_flops_per_token(gpt2) == 284_812_800
    assert A.train_flops_per_token(gpt2) == 854_438_400
    assert A.kaplan_train_flops_per_token(gpt2) == 6 * 85_056_000 + 6 * 12 * 1024 * 768


def test_six_n_undercounts_narrow_models_most():
    """On Chapter 6's ladder the real cost is over 2x 6N at width 8 and approaches it as width grows."""
    ratios = []
    for d in (8, 16, 32, 64, 128):
        cfg = Cfg(vocab_size=76, n_ctx=64, n_layer=2, n_head=4, n_embd=d)
        six_n = 6 * A.count_params(cfg, non_embedding=True)
        assert A.train_flops_per_token(cfg) > A.kaplan_train_flops_per_token(cfg) > six_n
        ratios.append(A.train_flops_per_token(cfg) / six_n)
    assert ratios[0] > 2 and 1 < ratios[-1] < 1.15
    assert ratios == sorted(ratios, reverse=True)


def test_counting_rejects_incomplete_or_invalid_configs():
    class Partial:
        vocab_size, n_ctx, n_layer = 10, 8, 2
    with pytest.raises(TypeError, match="lacks the field"):
        A.count_params(Partial())
    with pytest.raises(ValueError, match="not divisible"):
        A.count_params(Cfg(n_embd=30, n_head=4))
    for count in (A.matmul_params, A.forward_flops_per_token, A.train_flops_per_token,
                  A.kaplan_train_flops_per_token):
        with pytest.raises(ValueError, match="positive"):
            count(Cfg(n_layer=0))
        with pytest.raises(TypeError, match="lacks the field"):
            count(Partial())
    with pytest.raises(TypeError, match="integer"):
        A.count_params(Cfg(n_embd=32.0))
