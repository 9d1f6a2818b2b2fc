"""course_lib.nets.sampling: temperature / top-k draws from logits, shared by PixelCNN, WaveNet and
the token GPT."""
import pytest
import torch

from course_lib.nets.sampling import sample_logits, top_k_filter


def frequencies(logits, draws, **kw):
    """Empirical distribution of ``draws`` draws from one row of logits (V,)."""
    rows = logits.expand(draws, -1)                                  # (draws, V)
    idx = sample_logits(rows, generator=torch.Generator().manual_seed(0), **kw)
    return torch.bincount(idx, minlength=logits.numel()).float() / draws


def test_temperature_one_matches_the_softmax():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5])
    freq = frequencies(logits, 200_000)
    p = torch.softmax(logits, -1)
    # 200k draws: the standard error of each frequency is below 0.0012; allow 5 of them
    assert (freq - p).abs().max() < 0.006, f"{freq} vs softmax {p}"


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_divides_the_logits(temperature):
    logits = torch.tensor([1.5, 0.0, -0.5, 1.0])
    freq = frequencies(logits, 200_000, temperature=temperature)
    assert (freq - torch.softmax(logits / temperature, -1)).abs().max() < 0.006


def test_low_temperature_concentrates_and_high_flattens():
    logits = torch.tensor([1.0, 0.9, 0.0, -2.0])
    cold = frequencies(logits, 20_000, temperature=0.01)
    assert cold[0] > 0.99, f"at T=0.01 the argmax should win almost always, got {cold}"
    hot = frequencies(logits, 20_000, temperature=100.0)
    assert (hot - 0.25).abs().max() < 0.03, f"at T=100 the draws should be near uniform, got {hot}"
    warm = frequencies(logits, 20_000, temperature=0.5)
    assert cold[0] > warm[0] > frequencies(logits, 20_000)[0], "the top value's share falls as T rises"


def test_top_k_never_draws_outside_the_top_k():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 50, generator=g) * 3                  # (N, V)
    for k in (1, 3, 10):
        idx = sample_logits(logits, temperature=2.0, top_k=k, generator=torch.Generator().manual_seed(k))
        allowed = logits.topk(k, dim=-1).indices                     # (N, k)
        assert (allowed == idx[:, None]).any(-1).all(), f"top_k={k} drew a value outside the top {k}"
    greedy = sample_logits(logits, top_k=1)
    assert torch.equal(greedy, logits.argmax(-1)), "top_k=1 is the argmax"


def test_top_k_renormalises_over_the_kept_values():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0])
    freq = frequencies(logits, 200_000, top_k=2)
    want = torch.tensor([torch.e / (torch.e + 1), 1 / (torch.e + 1), 0.0, 0.0])
    assert (freq - want).abs().max() < 0.006 and freq[2:].sum() == 0


def test_top_k_filter_keeps_exactly_k_even_with_ties():
    logits = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 5.0, -1.0, 2.0]])
    out = top_k_filter(logits, 2)
    assert torch.isfinite(out).sum(-1).tolist() == [2, 2]
    assert out[1].tolist() == [float("-inf"), 5.0, float("-inf"), 2.0]
    assert top_k_filter(logits, None) is logits and top_k_filter(logits, 4) is logits


def test_shapes_devices_and_seeding():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 7, generator=g)                       # (..., V)
    a = sample_logits(logits, generator=torch.Generator().manual_seed(5))
    b = sample_logits(logits, generator=torch.Generator().manual_seed(5))
    assert a.shape == (2, 3) and a.dtype == torch.long and torch.equal(a, b)
    assert a.min() >= 0 and a.max() < 7
    assert sample_logits(torch.randn(7)).shape == ()
    # one temperature per row: a cold row always draws its argmax, a hot one does not
    rows = torch.tensor([[4.0, 0.0, 0.0], [4.0, 0.0, 0.0]]).repeat(500, 1)  # (1000, 3)
    temps = torch.tensor([0.01, 50.0]).repeat(500)                   # (1000,)
    idx = sample_logits(rows, temps, generator=torch.Generator().manual_seed(0)).view(500, 2)
    assert (idx[:, 0] == 0).all() and (idx[:, 1] != 0).sum() > 200


def test_same_draws_as_softmax_then_multinomial():
    """The draw order of the course's samplers: softmax(logits / T) then torch.multinomial on the CPU."""
    logits = torch.randn(6, 11, generator=torch.Generator().manual_seed(3))
    probs = torch.softmax(logits / 0.7, -1)
    want = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(9))[:, 0]
    got = sample_logits(logits, 0.7, generator=torch.Generator().manual_seed(9))
    assert torch.equal(got, want)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(temperature=0.0), ValueError, "temperature.*> 0"),
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(temperature=float("inf")), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature"),
    (dict(temperature=torch.tensor([1.0, 0.0])), ValueError, "every value > 0"),
    (dict(temperature=torch.ones(3)), ValueError, "broadcast"),
    (dict(temperature=torch.ones(1, 1)), ValueError, "broadcast"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(top_k=2.5), TypeError, "top_k"),
    (dict(generator=0), TypeError, "generator"),
])
def test_bad_arguments_say_what_was_expected(kwargs, error, match):
    with pytest.raises(error, match=match):
        sample_logits(torch.zeros(2, 5), **kwargs)


def test_bad_logits():
    with pytest.raises(TypeError, match="floating"):
        sample_logits(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="V >= 1"):
        sample_logits(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="V >= 1"):
        sample_logits(torch.tensor(1.0))
