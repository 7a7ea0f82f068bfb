"""Tests for utils.model: the GPT of Chapter 4 (shapes, causality, parameter count, init, sampling)."""
import importlib.util
import math

import pytest
import torch

from utils.model import GPT, GPTConfig


def tiny(**kw):
    base = dict(vocab_size=17, n_ctx=16, n_layer=2, n_head=2, n_embd=32)
    base.update(kw)
    return GPTConfig(**base)


def formula(c, non_embedding=True):
    """The brief's exact count, written out independently of utils.model."""
    d = c.n_embd
    per_block = 12 * d * d + (13 * d if c.bias else 2 * d)
    n = c.n_layer * per_block + (2 * d if c.bias else d)
    return n if non_embedding else n + c.vocab_size * d + c.n_ctx * d


CONFIGS = [tiny(), tiny(bias=False), tiny(n_layer=3, n_head=4, n_embd=48, vocab_size=76, n_ctx=64),
           GPTConfig(76, 64, 4, 4, 128), GPTConfig(50257, 1024, 12, 12, 768)]


def test_forward_returns_logits_of_shape_batch_time_vocab_and_scalar_loss():
    torch.manual_seed(0)
    model = GPT(tiny())
    idx = torch.randint(0, 17, (3, 10))
    logits, loss = model(idx)
    assert logits.shape == (3, 10, 17) and loss is None
    logits, loss = model(idx, torch.randint(0, 17, (3, 10)))
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_changing_a_future_token_never_changes_an_earlier_logit():
    torch.manual_seed(0)
    model = GPT(tiny()).eval()
    idx = torch.randint(0, 17, (2, 16))
    base, _ = model(idx)
    for t in (0, 5, 15):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % 17
        out, _ = model(changed)
        assert torch.allclose(out[:, :t], base[:, :t], atol=1e-6), f"positions before {t} changed"
        assert not torch.allclose(out[:, t], base[:, t]), "the changed position itself must change"


@pytest.mark.parametrize("config", CONFIGS[:4], ids=lambda c: f"L{c.n_layer}d{c.n_embd}b{int(c.bias)}")
def test_num_params_equals_the_exact_formula(config):
    model = GPT(config)
    assert model.num_params() == formula(config)
    assert model.num_params(non_embedding=False) == formula(config, False)
    # the output head is tied: counting unique tensors gives the same total
    assert model.num_params(non_embedding=False) == sum(p.numel() for p in model.parameters())
    d, L = config.n_embd, config.n_layer
    matmul = 12 * L * d * d + config.vocab_size * d  # block matrices and the tied head
    assert model.train_flops_per_token() == 6 * matmul + 12 * L * config.n_ctx * d


def test_output_head_is_the_token_embedding():
    model = GPT(tiny())
    idx = torch.randint(0, 17, (1, 4))
    with torch.no_grad():
        model.wte.weight[3] += 1.0
    x = model.wte(idx) + model.wpe(torch.arange(4))
    for block in model.blocks:
        x = block(x)
    expected = model.ln_f(x) @ model.wte.weight.T
    assert torch.allclose(model(idx)[0], expected, atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("utils.attention") is None,
                    reason="utils/attention.py (Chapter 3) is not there yet")
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"L{c.n_layer}d{c.n_embd}b{int(c.bias)}")
def test_model_counts_agree_with_the_attention_chapter(config):
    attention = importlib.import_module("utils.attention")
    assert attention.count_params(config, non_embedding=True) == formula(config, True)
    assert attention.count_params(config, non_embedding=False) == formula(config, False)
    if config.n_embd <= 128:  # build the model only where that is quick
        model = GPT(config)
        assert attention.count_params(config, non_embedding=True) == model.num_params()
        assert attention.count_params(config, non_embedding=False) == model.num_params(non_embedding=False)
        assert attention.train_flops_per_token(config) == model.train_flops_per_token()


def _math_sdpa(calls):
    """scaled_dot_product_attention written with matrix multiplies (utils.attention), so that
    FlopCounterMode sees QK^T and the product with V; on the CPU it does not count the fused kernel."""
    from utils.attention import attention, causal_mask

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        assert attn_mask is None and dropout_p == 0.0 and scale is None, "the model passes none of these"
        calls.append(tuple(q.shape))
        return attention(q, k, v, causal_mask(q.shape[-2], device=q.device) if is_causal else None)
    return sdpa


@pytest.mark.parametrize("config", [tiny(), tiny(bias=False, n_layer=1, n_head=1, n_ctx=8),
                                    tiny(n_layer=3, n_head=4, n_embd=48, vocab_size=76, n_ctx=64),
                                    GPTConfig(76, 32, 4, 8, 64, bias=False)],
                         ids=lambda c: f"L{c.n_layer}h{c.n_head}d{c.n_embd}T{c.n_ctx}b{int(c.bias)}")
def test_train_flops_per_token_equals_what_flop_counter_measures_on_the_model(config, monkeypatch):
    from torch.utils.flop_counter import FlopCounterMode

    from utils.attention import forward_flops_per_token, train_flops_per_token

    torch.manual_seed(0)
    model = GPT(config)
    B, T = 2, config.n_ctx  # full-length sequences: the count assumes n_ctx keys per query
    idx = torch.randint(0, config.vocab_size, (B, T))
    targets = torch.randint(0, config.vocab_size, (B, T))
    with torch.no_grad():
        fused_logits, _ = model(idx)
    calls = []
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", _math_sdpa(calls))
    with FlopCounterMode(display=False) as counter:
        logits, loss = model(idx, targets)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    backward = counter.get_total_flops()
    assert len(calls) == config.n_layer  # the model really ran the matrix-multiply attention
    assert torch.allclose(logits, fused_logits, atol=1e-5)  # and it computes what the fused kernel does
    assert forward == B * T * forward_flops_per_token(config)
    assert forward + backward == B * T * train_flops_per_token(config) == B * T * model.train_flops_per_token()


def test_initial_loss_is_close_to_log_vocab_size():
    torch.manual_seed(0)
    config = tiny(vocab_size=76, n_ctx=32)
    model = GPT(config)
    x = torch.randint(0, 76, (8, 32))
    y = torch.randint(0, 76, (8, 32))
    _, loss = model(x, y)
    assert abs(loss.item() - math.log(76)) < 0.1


def test_gpt2_initialisation_scales_residual_projections():
    torch.manual_seed(0)
    config = tiny(n_layer=8, n_embd=128, n_head=4)
    model = GPT(config)
    fc = torch.cat([b.mlp.fc.weight.flatten() for b in model.blocks])
    proj = torch.cat([torch.cat([b.mlp.proj.weight.flatten(), b.attn.proj.weight.flatten()]) for b in model.blocks])
    assert abs(fc.std().item() - 0.02) < 0.001
    assert abs(proj.std().item() - 0.02 / math.sqrt(2 * 8)) < 0.0005
    assert all((b.attn.qkv.bias == 0).all() for b in model.blocks)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_embd=30, n_head=4), "divisible by n_head"),
    (dict(n_layer=0), "at least 1"),
    (dict(dropout=1.0), "dropout"),
    (dict(n_ctx=-3), "at least 1"),
])
def test_bad_configs_raise_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_non_integer_sizes_raise_type_error():
    with pytest.raises(TypeError, match="n_embd"):
        tiny(n_embd=32.5)
    with pytest.raises(TypeError):
        GPT({"vocab_size": 3})


def test_sequence_longer_than_context_raises():
    model = GPT(tiny())
    with pytest.raises(ValueError, match="n_ctx=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="batch"):
        model(torch.zeros(16, dtype=torch.long))


def test_dropout_is_active_in_training_and_off_in_eval():
    torch.manual_seed(0)
    model = GPT(tiny(dropout=0.5))
    idx = torch.randint(0, 17, (2, 8))
    model.train()
    assert not torch.allclose(model(idx)[0], model(idx)[0])
    model.eval()
    assert torch.equal(model(idx)[0], model(idx)[0])


def test_generate_extends_past_the_context_and_greedy_is_deterministic():
    torch.manual_seed(0)
    model = GPT(tiny())
    start = torch.zeros(2, 3, dtype=torch.long)
    out = model.generate(start, max_new_tokens=20, temperature=1.0, top_k=5)
    assert out.shape == (2, 23) and torch.equal(out[:, :3], start)
    assert out.min() >= 0 and out.max() < 17
    greedy1 = model.generate(start, 10, temperature=0)
    greedy2 = model.generate(start, 10, temperature=0.7, top_k=1)
    assert torch.equal(greedy1, greedy2)
    g = torch.Generator().manual_seed(3)
    a = model.generate(start, 10, generator=g)
    g.manual_seed(3)
    assert torch.equal(a, model.generate(start, 10, generator=g))
    assert model.training  # generate restores the mode it found


@pytest.mark.parametrize("kwargs", [dict(temperature=-1.0), dict(top_k=0), dict(max_new_tokens=-2)])
def test_generate_rejects_bad_arguments(kwargs):
    model = GPT(tiny())
    args = dict(max_new_tokens=2)
    args.update(kwargs)
    with pytest.raises(ValueError):
        model.generate(torch.zeros(1, 2, dtype=torch.long), **args)


def test_config_round_trips_through_a_dict():
    c = tiny(dropout=0.1, bias=False)
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown"):
        GPTConfig.from_dict({**c.to_dict(), "n_embed": 3})
