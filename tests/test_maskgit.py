"""Tests of course_lib.orders.maskgit: the cosine schedule, the training mask and loss, decoding in T
steps (every token decided exactly once, never changed, the mask count of the schedule), guidance,
and a learning test."""
import math

import pytest
import torch

from course_lib import train
from course_lib.orders import maskgit
from course_lib.orders.maskgit import MaskGIT, MaskGITConfig


def small(K=16, N=16, seed=0):
    torch.manual_seed(seed)
    return MaskGIT(MaskGITConfig(codebook_size=K, n_tokens=N, d_model=32, n_layer=2, n_head=4))


def prompts(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (n,), generator=g) for v in (4, 6, 9, 2)], 1)


def test_gamma_is_the_cosine_schedule():
    assert maskgit.gamma(0.0) == 1.0 and abs(maskgit.gamma(1.0)) < 1e-12
    r = torch.linspace(0, 1, 11)
    assert torch.allclose(maskgit.gamma(r), torch.cos(math.pi / 2 * r))
    assert (maskgit.gamma(r).diff() < 0).all()


def test_masked_after_step_follows_the_schedule_from_the_start_count():
    # 16 tokens in 8 steps: floor(16 cos(pi/2 (t+1)/8)) = 15, 14, 12, 11, 8, 6, 3, then 0 at the end
    counts, unknown = [], 16
    for t in range(8):
        unknown = maskgit.masked_after_step(t, 8, 16, unknown)
        counts.append(unknown)
    assert counts == [15, 14, 13, 11, 8, 6, 3, 0] or counts == [
        max(1, min(c_prev - 1, math.floor(16 * math.cos(math.pi / 2 * (t + 1) / 8)))) for t, c_prev in
        zip(range(8), [16] + counts[:-1])][:-1] + [0]
    # clipped so that each step decides at least one token, and at most unknown - 1 stay masked
    assert maskgit.masked_after_step(0, 16, 16, 16) == 15
    assert maskgit.masked_after_step(1, 16, 16, 15) == 14           # floor(15.69) = 15 clipped to 14
    assert maskgit.masked_after_step(0, 1, 16, 16) == 0             # one step decides everything
    with pytest.raises(ValueError, match="step"):
        maskgit.masked_after_step(8, 8, 16, 16)


def test_random_mask_counts_follow_ceil_gamma_and_vary_per_example():
    g = torch.Generator().manual_seed(0)
    m = maskgit.random_mask(4000, 16, g)
    counts = m.sum(1).float()
    assert counts.min() >= 1 and counts.max() == 16 and counts.unique().numel() > 8
    # E[ceil(16 cos(pi r / 2))] for r ~ U(0, 1) is about 16 * 2/pi + 0.5
    assert abs(counts.mean().item() - (16 * 2 / math.pi + 0.5)) < 0.3
    # masked positions are spread uniformly over the grid
    assert (m.float().mean(0) - m.float().mean()).abs().max() < 0.05


def test_loss_only_on_masked_positions():
    logits = torch.randn(3, 5, 7, requires_grad=True)
    targets = torch.randint(7, (3, 5))
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[0, 1] = mask[2, 4] = True
    loss = maskgit.masked_loss(logits, targets, mask)
    loss.backward()
    assert (logits.grad[~mask].abs().sum() == 0) and logits.grad[mask].abs().sum() > 0
    want = torch.nn.functional.cross_entropy(logits[mask], targets[mask], label_smoothing=0.1)
    assert torch.allclose(loss, want)        # one masked token per row: per image = per token


def test_masked_loss_is_maskgits_weighted_sequence_cross_entropy():
    """maskgit/libml/losses.py weighted_sequence_cross_entropy_loss, computed its way: soft targets
    one_hot (1 - s) + s / C, loss = -sum(soft * log_softmax), sum(loss * w, -1) / sum(w, -1), mean."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, 9, generator=g)
    targets = torch.randint(9, (4, 6), generator=g)
    mask = torch.rand(4, 6, generator=g) < torch.tensor([[0.2], [0.5], [0.8], [1.0]])
    mask[:, 0] = True                                     # unequal counts per row, none empty
    s = 0.1
    soft = torch.nn.functional.one_hot(targets, 9) * (1 - s) + s / 9
    loss = -(soft * logits.log_softmax(-1)).sum(-1)
    w = mask.float()
    want = ((loss * w).sum(-1) / w.sum(-1)).mean()
    assert torch.allclose(maskgit.masked_loss(logits, targets, mask, s), want, atol=1e-6)
    token_mean = torch.nn.functional.cross_entropy(logits[mask], targets[mask], label_smoothing=s)
    assert not torch.allclose(token_mean, want, atol=1e-4)   # the weighting matters here


def test_forward_shapes_and_errors():
    m = small()
    p = prompts(3)
    tok = torch.randint(0, 17, (3, 16))                  # 16 = [MASK]
    assert m(tok, p).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="values in"):
        m(torch.full((3, 16), 17), p)
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        m(tok[:, :8], p)
    with pytest.raises(TypeError, match="int64"):
        m(tok.float(), p)


@pytest.mark.parametrize("steps", [1, 2, 4, 8, 16])
def test_decode_decides_every_token_exactly_once_and_never_changes_it(steps):
    m = small()
    out = maskgit.generate(m, prompts(5), steps=steps, generator=torch.Generator().manual_seed(1))
    assert out.tokens.shape == (5, 16) and out.order.shape == (5, 16) and out.nfe == steps
    assert out.tokens.min() >= 0 and out.tokens.max() < 16              # no [MASK] left
    assert out.order.min() >= 0 and out.order.max() <= steps - 1        # every position decided once
    assert out.guesses.shape == (steps, 5, 16)
    for s in range(steps):                                              # a decided token never changes
        decided = out.order <= s
        assert torch.equal(out.guesses[s][decided], out.tokens[decided])
        assert torch.equal(out.guesses[-1], out.tokens)
    # the number still masked after each step is the schedule's
    unknown, want = 16, [16]
    for t in range(steps):
        unknown = maskgit.masked_after_step(t, steps, 16, unknown)
        want.append(unknown)
    assert out.masked == want
    for t in range(steps):
        assert ((out.order == t).sum(1) == want[t] - want[t + 1]).all()
    if steps == 1:
        assert (out.order == 0).all()                                   # all at once
    if steps == 16:
        assert ((out.order == torch.arange(16)[:, None, None]).sum((1, 2)) == 5).all()   # one per step


@pytest.mark.parametrize("training", [True, False])
def test_generate_samples_in_eval_mode_and_gives_the_callers_mode_back(training):
    m = small().train(training)
    seen = []
    m.register_forward_hook(lambda mod, *a: seen.append(mod.training))
    maskgit.generate(m, prompts(2), steps=2, cfg_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert seen and not any(seen)                              # every pass with dropout off
    assert all(sub.training == training for sub in m.modules())


def test_decode_is_seeded_and_guidance_changes_the_logits_only_when_scale_is_not_one():
    m = small()
    p = prompts(4)
    a = maskgit.generate(m, p, steps=4, generator=torch.Generator().manual_seed(3))
    b = maskgit.decode(m, p, steps=4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.order, b.order)
    tok = torch.full((4, 16), 16)
    one = maskgit.logits_with_guidance(m, tok, p, cfg_scale=1.0)
    assert torch.allclose(one, m(tok, p))
    three = maskgit.logits_with_guidance(m, tok, p, cfg_scale=3.0)
    from course_lib.orders import prompt as prompt_lib
    u = m(tok, prompt_lib.null_prompts(4, device=p.device))
    assert torch.allclose(three, u + 3.0 * (one - u), atol=1e-5)


def test_generate_is_maskgits_parallel_decode_on_the_same_noise(monkeypatch):
    """google-research/maskgit libml/parallel_decode.py ``decode``, step by step its way on the same
    Gumbel draws: categorical sample (argmax of logits + Gumbel), known tokens kept, ratio (t+1)/T,
    mask_len = floor(N0 cos(pi/2 ratio)) clipped to [1, unknown - 1], confidence log p(sampled) +
    4.5 (1 - ratio) Gumbel with +inf for known tokens, re-mask where confidence < the mask_len-th
    smallest; the output is the last step's samples."""
    m = small().eval()
    p = prompts(3)
    noise = []
    real = maskgit.gumbel

    def recording(shape, generator=None, device=None):
        noise.append(real(shape, generator, device))
        return noise[-1]
    monkeypatch.setattr(maskgit, "gumbel", recording)
    steps = 6
    out = maskgit.generate(m, p, steps=steps, generator=torch.Generator().manual_seed(1))
    draws = iter(noise)
    cur = torch.full((3, 16), m.cfg.mask_id)
    n0 = (cur == m.cfg.mask_id).sum(-1, keepdim=True)
    with torch.no_grad():
        for t in range(steps):
            logits = m(cur, p)
            sampled = (logits + next(draws)).argmax(-1)
            unknown = cur == m.cfg.mask_id
            sampled = torch.where(unknown, sampled, cur)
            assert torch.equal(out.guesses[t], sampled)
            ratio = (t + 1) / steps
            mask_len = torch.floor(n0 * max(math.cos(math.pi / 2 * ratio), 1e-6))
            mask_len = torch.clamp(torch.minimum(unknown.sum(-1, keepdim=True) - 1, mask_len), min=1)
            probs = logits.softmax(-1).gather(-1, sampled[..., None])[..., 0]
            probs = torch.where(unknown, probs, torch.full_like(probs, float("inf")))
            conf = probs.log() + maskgit.CHOICE_TEMPERATURE * (1 - ratio) * next(draws)
            cut = conf.sort(-1).values.gather(-1, mask_len.long())
            cur = torch.where(conf < cut, torch.full_like(sampled, m.cfg.mask_id), sampled)
    assert torch.equal(out.tokens, sampled)


def test_confidence_keeps_the_most_confident_unknown_tokens():
    conf = torch.tensor([[0.9, 0.1, 0.5, 0.7], [0.2, 0.3, 0.4, 0.0]])
    unknown = torch.tensor([[True, True, True, False], [True, True, True, True]])
    again = maskgit.choose_to_mask(conf, unknown, 2)
    assert again.tolist() == [[False, True, True, False], [True, False, False, True]]
    assert not (again & ~unknown).any()                                 # a decided token is never masked again


def test_maskgit_learns_tokens_from_the_prompt_and_from_the_visible_tokens():
    """Tokens t_i = (c + i) mod 16 with c = 2 * (shape prompt) + a coin: the prompt gives c up to one
    bit, a visible token gives the rest. A uniform guess scores ln 16 = 2.77 (smoothed: about 2.8);
    after 300 steps the masked loss must be below 1.3, and in samples decoded in 4 steps most neighbours
    must follow the rule t_(i+1) = t_i + 1 (mod 16), which a model that ignores the visible tokens
    meets for 1/16 of the pairs."""
    m = small(seed=0)
    g = torch.Generator().manual_seed(0)

    def batch(n):
        p = prompts(n, seed=int(torch.randint(10**6, (1,), generator=g)))
        c = 2 * p[:, 0] + torch.randint(0, 2, (n,), generator=g)
        return (c[:, None] + torch.arange(16)) % 16, p

    def loss_fn(step):
        tok, p = batch(64)
        return maskgit.loss(m, tok, p, generator=g)
    hist = train.train(m, loss_fn, 300, lr=3e-3, progress=False)
    final = sum(hist.losses[-30:]) / 30
    assert final < 1.3, final
    tok, p = batch(64)
    out = maskgit.generate(m, p, steps=4, generator=torch.Generator().manual_seed(0))
    follows = ((out.tokens[:, 1:] - out.tokens[:, :-1]) % 16 == 1).float().mean()
    assert follows > 0.6, follows


@pytest.fixture
def tiny_recipe(tmp_path, monkeypatch):
    """recipes.maskgit with a small model trained 3 steps on random tokens; the cache in tmp_path."""
    from course_lib.recipes import maskgit as recipe
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(recipe, "build", lambda B: small(K=recipe.shape_tokens.CODEBOOK))
    tokens, p = torch.randint(0, recipe.shape_tokens.CODEBOOK, (8, 16)), prompts(8)

    def tiny_fit(model, B, criterion=None, progress=True):       # 3 steps, not the budget's
        return train.train(model, lambda s: maskgit.loss(model, tokens, p, criterion=criterion), 3, progress=False)
    monkeypatch.setattr(recipe, "fit", tiny_fit)
    return recipe


def learners_loss(logits, targets, mask, label_smoothing=0.1):     # the token-level mean of the exercise
    return torch.nn.functional.cross_entropy(logits[mask], targets[mask])


def test_train_maskgit_goes_through_the_cache_and_a_learners_loss_writes_nothing(tiny_recipe):
    from course_lib import cache
    recipe, B = tiny_recipe, tiny_recipe.budget("quick")
    path = cache.cache_path("maskgit", dict(budget=B, seed=recipe.SEED))
    model, hist = recipe.train_maskgit(B, criterion=learners_loss, progress=False)   # written nowhere
    assert not model.from_cache and len(hist.losses) == 3 and not model.training and not path.exists()
    model, hist = recipe.train_maskgit(B, progress=False)                   # the library's loss: cached
    assert not model.from_cache and path.exists()
    again, hist2 = recipe.train_maskgit(B, progress=False)                  # loaded, with its loss curve
    assert again.from_cache and hist2.losses == hist.losses
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_train_maskgit_with_a_learners_loss_loads_the_shipped_model_unless_weights_say_train(
        tiny_recipe, lecture, tmp_path, capsys):
    from course_lib import runtime, weights
    recipe = tiny_recipe
    with weights.exporting(tmp_path / "weights"):                          # what make pretrain ships
        shipped = recipe.trained_maskgit("lecture")
    capsys.readouterr()
    model, hist = recipe.train_maskgit(recipe.budget("lecture"), criterion=learners_loss, progress=False)
    assert model.from_cache and hist.losses == shipped.history.losses     # the course's run and its curve
    assert 'WEIGHTS = "train" trains it here with your loss' in capsys.readouterr().out
    runtime.set_weights("train")
    model, hist = recipe.train_maskgit(recipe.budget("lecture"), criterion=learners_loss, progress=False)
    assert not model.from_cache and hist.losses != shipped.history.losses
    assert not list((tmp_path / "cache").glob("maskgit-*"))               # a learner's model is kept nowhere
