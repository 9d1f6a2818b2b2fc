"""The GPT over tokens of notebook 04: shapes and errors, the KV cache, forced tokens, CFG, learning."""
import math

import pytest
import torch

from course_lib import data, train
from course_lib.orders import gpt
from course_lib.orders import prompt as P


def tiny(vocab=32, seed=0):
    torch.manual_seed(seed)
    return gpt.TokenGPT(gpt.GPTConfig(vocab_size=vocab, n_tokens=6, d_model=32, n_layer=2, n_head=4)).eval()


def test_forward_gives_one_prediction_per_token_and_is_causal():
    m = tiny()
    prompts = data.shapes(3, seed=0).prompts
    tokens = torch.randint(32, (3, 6), generator=torch.Generator().manual_seed(0))
    logits = m(tokens, prompts)
    assert logits.shape == (3, 6, 32)
    changed = tokens.clone()
    changed[:, 4] = (changed[:, 4] + 1) % 32                 # token 4 may change only predictions 5..
    after = m(changed, prompts)
    assert torch.allclose(after[:, :5], logits[:, :5], atol=1e-6)
    assert not torch.allclose(after[:, 5], logits[:, 5])
    other = prompts.clone()
    other[:, 1] = (other[:, 1] + 1) % 6                      # the prompt changes every prediction
    assert not torch.allclose(m(tokens, other)[:, 0], logits[:, 0])


def test_bad_inputs_get_clear_errors():
    m = tiny()
    prompts = data.shapes(2, seed=0).prompts
    with pytest.raises(ValueError, match=r"tokens: expected values in \[0, 31\]"):
        m(torch.full((2, 6), 32), prompts)
    with pytest.raises(ValueError, match="at most 6 tokens"):
        m(torch.zeros(2, 7, dtype=torch.long), prompts)
    with pytest.raises(ValueError, match="prompts: expected 2 rows, one per row of x"):
        m(torch.zeros(2, 6, dtype=torch.long), prompts[:1])
    with pytest.raises(TypeError, match="cfg_scale"):
        gpt.generate(m, prompts, cfg_scale="2")
    with pytest.raises(ValueError, match=r"force: expected shape \(2, 6\)"):
        gpt.generate(m, prompts, force=torch.zeros(2, 5, dtype=torch.long))


@pytest.mark.parametrize("cfg_scale,top_k", [(1.0, None), (2.5, 5), (0.0, None)])
def test_kv_cache_draws_the_same_tokens_as_the_whole_sequence(cfg_scale, top_k):
    m = tiny(seed=1)
    with torch.no_grad():                                     # sharper logits than at initialisation
        m.head.weight.mul_(50)
    prompts = data.shapes(16, seed=1).prompts
    kw = dict(cfg_scale=cfg_scale, top_k=top_k, temperature=0.9)
    cached = gpt.generate(m, prompts, kv_cache=True, generator=torch.Generator().manual_seed(3), **kw)
    plain = gpt.generate(m, prompts, kv_cache=False, generator=torch.Generator().manual_seed(3), **kw)
    assert cached.shape == (16, 6) and cached.dtype == torch.long
    assert torch.equal(cached, plain)
    other = gpt.generate(m, prompts, kv_cache=True, generator=torch.Generator().manual_seed(4), **kw)
    assert not torch.equal(cached, other)                     # the seed matters: the draw is random


def test_forced_tokens_are_kept_and_the_rest_is_drawn():
    m = tiny()
    prompts = data.shapes(4, seed=2).prompts
    force = torch.full((4, 6), -1, dtype=torch.long)
    force[:, :2] = torch.tensor([7, 9])
    out = gpt.generate(m, prompts, force=force, generator=torch.Generator().manual_seed(0))
    assert (out[:, :2] == torch.tensor([7, 9])).all()
    free = gpt.generate(m, prompts, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(out, free)


def test_guidance_runs_the_null_prompt_and_scale_one_is_the_conditional_model():
    m = tiny(seed=2)
    with torch.no_grad():
        m.head.weight.mul_(50)
    prompts = data.shapes(8, seed=3).prompts
    a = gpt.generate(m, prompts, cfg_scale=1.0, top_k=1)
    # greedy with w = 0 is the greedy unconditional model: the same for every prompt
    u = gpt.generate(m, prompts, cfg_scale=0.0, top_k=1)
    null = gpt.generate(m, P.null_prompts(8), cfg_scale=1.0, top_k=1)
    assert torch.equal(u, null) and bool((u == u[0]).all())
    assert not bool((a == a[0]).all())


def test_gpt_learns_prompted_token_sequences_below_log_k():
    # a toy language: 6 tokens that spell out the prompt (shape, colour, position, size, shape + colour,
    # position + size); after 300 steps the loss must be far below the uniform log K = 3.47 nats
    torch.manual_seed(0)
    m = gpt.TokenGPT(gpt.GPTConfig(vocab_size=32, n_tokens=6, d_model=48, n_layer=2, n_head=4))
    g = torch.Generator().manual_seed(0)

    def batch(n):
        p = data.shapes(n, seed=int(torch.randint(1000, (1,), generator=g))).prompts
        t = torch.stack([p[:, 0], 4 + p[:, 1], 10 + p[:, 2], 19 + p[:, 3], 21 + (p[:, 0] + p[:, 1]) % 6,
                         27 + (p[:, 2] + p[:, 3]) % 5], 1)
        return t, p

    pool_t, pool_p = batch(4096)

    def loss_fn(step):
        idx = torch.randint(4096, (64,), generator=g)
        return gpt.loss(m, pool_t[idx], pool_p[idx], p_null=0.1, generator=g)

    train.train(m, loss_fn, 300, lr=2e-3, progress=False)
    t, p = batch(512)
    with torch.no_grad():
        held = gpt.loss(m, t, p, p_null=0.0)
    assert held.item() < 0.2 * math.log(32), held.item()
    out = gpt.generate(m, p[:64], top_k=1)
    assert (out == t[:64]).float().mean() > 0.95
