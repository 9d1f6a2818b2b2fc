"""One calling convention across course_lib/orders and course_lib/heads (issue 21).

Every order model is called as ``model(x, prompts)`` (the tokens first, the condition second), trained
with a ``loss`` whose data come before the prompts, and sampled with ``generate(..., prompts, *,
cfg_scale=, temperature=, generator=[, steps=])``: keyword-only, ``cfg_scale = 1`` the plain
conditional model. Every head is MAR's ``DiffLoss`` shape: ``head.loss(x, z)`` and ``head.sample(z, *,
steps=, cfg_scale=, z_uncond=, temperature=, generator=)``.
"""
import inspect

import pytest
import torch

from course_lib import heads
from course_lib.heads import backbone
from course_lib.nets.transformer import Config
from course_lib.orders import continuous, gpt, infinity, maskgit, var
from course_lib.orders import prompt as P

SCALES = (1, 2, 3)
TINY = Config(d_model=32, n_layer=1, n_head=4)
CONT = continuous.ContinuousConfig(latent_dim=3, n_tokens=5, d_model=32, n_layer=1, n_head=4)
SAMPLING = ("cfg_scale", "temperature", "generator")


def _prompts(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(k, (n,), generator=g) for k in P.N_VALUES], 1)


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _case(name):
    """(model, extra parts before prompts in generate, x for forward, loss thunk, generate thunk(**kw))."""
    torch.manual_seed(0)
    p = _prompts(3)
    if name == "gpt":
        m = gpt.TokenGPT(gpt.GPTConfig(vocab_size=16, n_tokens=5, d_model=32, n_layer=1, n_head=4))
        x = torch.randint(16, (3, 5))
        return (m(x, p).shape == (3, 5, 16), lambda: gpt.loss(m, x, p, p_null=0.1, generator=_g()),
                lambda **kw: gpt.generate(m, p, **kw), gpt.generate)
    if name == "maskgit":
        m = maskgit.MaskGIT(maskgit.MaskGITConfig(codebook_size=16, n_tokens=16, d_model=32, n_layer=1, n_head=4))
        x = torch.randint(16, (3, 16))
        return (m(x, p).shape == (3, 16, 16), lambda: maskgit.loss(m, x, p, p_null=0.1, generator=_g()),
                lambda **kw: maskgit.generate(m, p, steps=2, **kw).tokens, maskgit.generate)
    if name == "var":
        q, m = var.MultiScaleVQ(16, 4, SCALES), var.VAR(16, 4, SCALES, TINY)
        codes = torch.randint(16, (3, 14))
        inputs = q.teacher_inputs(codes)
        return (m(inputs, p).shape == (3, 14, 16), lambda: m.loss(codes, inputs, p),
                lambda **kw: var.generate(m, q, p, **kw)["codes"], var.generate)
    if name == "infinity":
        q, m = infinity.MultiScaleBSQ(4, SCALES), infinity.Infinity(4, SCALES, TINY)
        sc = infinity.self_correct(q, torch.randn(3, 3, 3, 4), 0.3, _g())
        return (m(sc.inputs, p).shape == (3, 14, 4), lambda: m.loss(sc.labels, sc.inputs, p),
                lambda **kw: infinity.generate(m, q, p, **kw)["bits"], infinity.generate)
    model = continuous.ContinuousAR(CONT) if name == "continuous" else backbone.MaskedAR(CONT)
    head = heads.FlowHead(3, 32, width=16, depth=1)
    x = torch.randn(3, 5, 3)
    if name == "continuous":
        ok = model(x, p).shape == (3, 5, 32)
        return (ok, lambda: continuous.loss(model, head, x, p, p_null=0.1, generator=_g()),
                lambda **kw: continuous.generate(model, head, p, **kw), continuous.generate)
    ok = model(x, p, torch.ones(3, 5, dtype=torch.bool)).shape == (3, 5, 32)
    return (ok, lambda: backbone.loss(model, head, x, p, p_null=0.1, generator=_g()),
            lambda **kw: backbone.generate(model, head, p, steps=2, head_steps=2, **kw).latents, backbone.generate)


ORDERS = ["gpt", "maskgit", "var", "infinity", "continuous", "masked"]


@pytest.mark.parametrize("name", ORDERS)
def test_every_order_model_is_called_the_same_way(name):
    forward_ok, loss, generate, fn = _case(name)
    assert forward_ok                                           # model(x, prompts)
    value = loss()
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    params = inspect.signature(fn).parameters
    for kw in SAMPLING:                                         # keyword-only guidance and sampling
        assert params[kw].kind is inspect.Parameter.KEYWORD_ONLY, (name, kw)
    if "steps" in params:
        assert params["steps"].kind is inspect.Parameter.KEYWORD_ONLY, name
    a = generate(cfg_scale=1.0, temperature=1.0, generator=_g(1))
    b = generate(cfg_scale=1.0, temperature=1.0, generator=_g(1))
    assert torch.equal(a, b) and len(a) == 3                   # seeded, one sample per prompt
    guided = generate(cfg_scale=2.0, temperature=1.0, generator=_g(1))
    assert guided.shape == a.shape                              # cfg_scale != 1: the same call, guided
    with pytest.raises(TypeError, match="cfg_scale"):
        generate(cfg_scale="2")
    with pytest.raises(TypeError, match="generator"):
        generate(generator=0)
    with pytest.raises(ValueError, match="temperature"):
        generate(temperature=-1.0)


@pytest.mark.parametrize("make", [lambda: heads.MSEHead(3, 8, width=16), lambda: heads.MSEHead(3, 8, hidden=0),
                                  lambda: heads.GaussianHead(3, 8), lambda: heads.FlowHead(3, 8, width=16, depth=1),
                                  lambda: heads.EnergyHead(3, 8, width=16, depth=1)],
                         ids=["mse", "mse-linear", "gaussian", "flow", "energy"])
def test_every_head_is_loss_of_target_and_z_plus_sample_of_z(make):
    torch.manual_seed(0)
    head = make()
    x, z = torch.randn(6, 3), torch.randn(6, 8)
    assert head.loss(x, z, generator=_g()).dim() == 0
    params = inspect.signature(head.sample).parameters
    for kw in ("steps", "cfg_scale", "z_uncond", "temperature", "generator"):
        assert params[kw].kind is inspect.Parameter.KEYWORD_ONLY, kw
    s = head.sample(z, steps=2, cfg_scale=1.0, temperature=1.0, generator=_g(1))
    assert s.shape == (6, 3)
    guided = head.sample(z, steps=2, z_uncond=torch.randn(6, 8), cfg_scale=2.0, generator=_g(1))
    assert guided.shape == (6, 3)
    with pytest.raises(ValueError, match="steps"):
        head.sample(z, steps=0)
    with pytest.raises(TypeError, match="generator"):
        head.sample(z, generator=0)


def test_guidance_goes_through_the_head_with_both_conditions():
    """The transformer hands z and z_uncond to the head; the flow head mixes its velocity (MAR,
    NextStep-1), the one-step heads mix z (SLED). Checked on the raster model: generate with guidance
    equals the head's own guided sampling of the model's two conditions."""
    torch.manual_seed(0)
    model = continuous.ContinuousAR(continuous.ContinuousConfig(latent_dim=3, n_tokens=1, d_model=32,
                                                                n_layer=1, n_head=4)).eval()
    head = heads.FlowHead(3, 32, width=16, depth=1)
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    p = _prompts(4)
    out = continuous.generate(model, head, p, cfg_scale=3.0, generator=_g(2))        # (4, 1, 3)
    empty = torch.zeros(4, 0, 3)
    with torch.no_grad():
        z = model.last_hidden(empty, p, None)
        z_u = model.last_hidden(empty, P.null_prompts(4), None)
    want = head.sample(z, z_uncond=z_u, cfg_scale=3.0, generator=_g(2))
    torch.testing.assert_close(out[:, 0], want)
    mixed_z = head.sample(z_u + 3.0 * (z - z_u), generator=_g(2))                    # the other way
    assert not torch.allclose(out[:, 0], mixed_z, atol=1e-4)


def test_notebook_07_heads_are_heads_of_course_lib_heads():
    from course_lib.recipes import limit_of_tokens
    for kind, make in limit_of_tokens.HEADS.items():
        assert isinstance(make(3, 32), heads.Head), kind
