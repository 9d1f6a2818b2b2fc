"""The causal transformer over continuous tokens and its two simplest heads (notebooks 07, 09)."""

import pytest
import torch

from course_lib import heads, train
from course_lib.orders import continuous as C
from course_lib.orders import prompt as P

CFG = C.ContinuousConfig(latent_dim=3, n_tokens=6, d_model=32, n_layer=2, n_head=4)


def linear_mse(token_dim=3, cond_dim=32):
    """Notebook 07's MSE head: x = Linear(z)."""
    return heads.MSEHead(token_dim, cond_dim, hidden=0)


def _prompts(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(k, (n,), generator=g) for k in P.N_VALUES], 1)


def test_forward_is_causal_and_shaped():
    torch.manual_seed(0)
    model = C.ContinuousAR(CFG).eval()
    x, p = torch.randn(2, 6, 3), _prompts(2)
    z = model(x, p)
    assert z.shape == (2, 6, 32)
    y = x.clone()
    y[:, 3] += 1.0                                   # change token 3: z_0..z_3 must not move, z_4 must
    z2 = model(y, p)
    assert torch.allclose(z[:, :4], z2[:, :4], atol=1e-6)
    assert not torch.allclose(z[:, 4], z2[:, 4], atol=1e-4)
    # the prompt reaches the first token
    assert not torch.allclose(model(x, P.null_prompts(2)), z, atol=1e-4)
    # a prefix gives the same conditions as the whole sequence
    assert torch.allclose(model(x[:, :4], p), z[:, :4], atol=1e-5)


def test_forward_rejects_bad_input():
    model = C.ContinuousAR(CFG)
    with pytest.raises(ValueError, match=r"expected shape \(B, T <= 6, 3\)"):
        model(torch.randn(2, 6, 4), _prompts(2))
    with pytest.raises(TypeError, match="latents: expected a floating-point tensor"):
        model(torch.zeros(2, 6, 3, dtype=torch.long), _prompts(2))
    with pytest.raises(ValueError, match="prompts: expected 2 rows, one per row of x"):
        model(torch.randn(2, 6, 3), _prompts(3))


@pytest.mark.parametrize("cfg_scale", [1.0, 2.0])
def test_generate_with_cache_matches_the_whole_sequence(cfg_scale):
    torch.manual_seed(0)
    model, head = C.ContinuousAR(CFG).eval(), linear_mse()
    p = _prompts(3)
    x = C.generate(model, head, p, cfg_scale=cfg_scale)
    assert x.shape == (3, 6, 3)
    # the same chain without the cache: re-run the sequence each step, guide, take the mean
    seq = torch.zeros(3, 0, 3)
    for i in range(6):
        full = torch.cat([seq, torch.zeros(3, 1, 3)], 1)                  # the last slot is never read
        z = model(full, p)[:, i]
        if cfg_scale != 1.0:
            zn = model(full, P.null_prompts(3))[:, i]
            z = zn + cfg_scale * (z - zn)
        seq = torch.cat([seq, head.net(z)[:, None]], 1)
    assert torch.allclose(x, seq, atol=1e-5)


def test_gaussian_head_loss_is_the_normal_nll_and_sampling_is_seeded():
    torch.manual_seed(0)
    head = heads.GaussianHead(3, 8)
    z, x = torch.randn(5, 4, 8), torch.randn(5, 4, 3)
    mu, log_sigma = head.params(z)
    ref = -torch.distributions.Normal(mu, log_sigma.exp()).log_prob(x).mean()
    assert torch.allclose(head.loss(x, z), ref, atol=1e-5)
    a = head.sample(z, generator=torch.Generator().manual_seed(1))
    b = head.sample(z, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (5, 4, 3)
    assert torch.allclose(head.sample(z, temperature=0.0), mu)


def _fit_bimodal(head, steps=300):
    """Every token is +1 or -1 with probability 1/2, whatever the prompt and the past: two right
    answers everywhere (the running dog in one number)."""
    torch.manual_seed(0)
    model = C.ContinuousAR(CFG)
    g = torch.Generator().manual_seed(0)

    def loss_fn(step):
        x = torch.randint(2, (64, 6, 1), generator=g).float().mul(2).sub(1).expand(64, 6, 3).contiguous()
        return C.loss(model, head, x, _prompts(64, step), generator=g)

    train.train(torch.nn.ModuleList([model, head]), loss_fn, steps, lr=3e-3, progress=False)
    return model.eval(), head.eval()


def test_mse_head_learns_the_average_of_two_answers():
    model, head = _fit_bimodal(linear_mse())
    x = C.generate(model, head, _prompts(64, 99))
    # the prediction is the mean 0 of {-1, +1}: far from both answers (distance 1 from each)
    assert x.abs().mean() < 0.2
    assert ((x.abs() - 1).abs() > 0.6).float().mean() > 0.9


def test_gaussian_head_is_unimodal_around_the_average():
    model, head = _fit_bimodal(heads.GaussianHead(3, 32))
    mu, log_sigma = head.params(model(torch.zeros(64, 6, 3), _prompts(64, 99)))
    assert mu.abs().mean() < 0.2                                    # centred between the answers
    assert (log_sigma.exp().mean() - 1).abs() < 0.25                # spread of one, as the data
    x = C.generate(model, head, _prompts(512, 98), generator=torch.Generator().manual_seed(0))
    # samples fill the gap between -1 and +1 where no data lies: ~38% within 0.5 of 0 for N(0, 1)
    assert (x.abs() < 0.5).float().mean() > 0.25


@pytest.mark.parametrize("kind", ["flow", "energy"])
def test_loss_draws_the_heads_noise_from_the_generator_it_is_given(kind):
    # a head that draws (times, noise) must take them from the caller's generator, not the global RNG:
    # otherwise a model's training depends on whatever ran before it in the process
    torch.manual_seed(0)
    model, head = C.ContinuousAR(CFG), heads.make(kind, CFG.latent_dim, CFG.d_model, width=16, depth=1)
    x, prompts = torch.randn(5, CFG.n_tokens, CFG.latent_dim), _prompts(5)
    losses = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)                          # a different global state each time
        losses.append(C.loss(model, head, x, prompts, p_null=0.5, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(losses[0], losses[1])
