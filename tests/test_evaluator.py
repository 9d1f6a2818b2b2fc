"""The shared judge of notebooks 04-06: the shapes evaluator, the Fréchet distance, the disk cache."""
import pytest
import torch
from torch import nn

from course_lib import data, evaluator, metrics, runtime, train


def test_evaluator_is_at_least_98_percent_right_per_attribute_on_held_out_shapes():
    ref = evaluator.reference(2000, seed=3)
    acc = evaluator.attribute_accuracy(ref.images, ref.prompts)
    assert set(acc) == {"shape", "color", "position", "size"}
    assert min(acc.values()) >= 0.98, acc
    assert evaluator.prompt_accuracy(ref.images, ref.prompts) >= 0.95


def test_prompt_accuracy_falls_to_zero_when_one_attribute_is_wrong():
    ref = evaluator.reference(300, seed=4)
    wrong = ref.prompts.clone()
    wrong[:, 1] = (wrong[:, 1] + 1) % 6                                  # every colour wrong
    assert evaluator.prompt_accuracy(ref.images, wrong) <= 0.02
    ev = evaluator.shapes_evaluator()
    assert ev.features(ref.images).shape == (300, evaluator.CONFIG["features"])
    assert ev.predict(ref.images).shape == (300, 4) and ev.predict(ref.images).dtype == torch.long


def test_an_attribute_left_open_is_not_judged_and_the_others_still_are():
    ref = evaluator.reference(300, seed=4)
    moved = ref.prompts.clone()
    moved[:, 2] = (moved[:, 2] + 4) % 9                                  # every place wrong
    assert evaluator.prompt_accuracy(ref.images, moved) <= 0.02
    open_place = ref.prompts.clone()
    open_place[:, 2] = data.N_VALUES[2]                                  # the null id: place left open
    assert evaluator.prompt_accuracy(ref.images, open_place) >= 0.95
    open_place[:, 0] = (open_place[:, 0] + 1) % 4                        # ... but every shape wrong
    assert evaluator.prompt_accuracy(ref.images, open_place) <= 0.02


def test_evaluator_inputs_get_clear_errors():
    ref = evaluator.reference(8)
    with pytest.raises(ValueError, match=r"prompts: expected shape \(8, 4\)"):
        evaluator.prompt_accuracy(ref.images, ref.prompts[:, :3])
    with pytest.raises(ValueError, match=r"prompts\[:, 2\] \(position\)"):
        evaluator.prompt_accuracy(ref.images, ref.prompts + torch.tensor([0, 0, 9, 0]))
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 3, 16, 16\)"):
        evaluator.prompt_accuracy(ref.images[:, :, :8, :8], ref.prompts)


def test_frechet_distance_is_zero_for_identical_features_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1000, 8, generator=g)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    d = [metrics.frechet_distance(a, a + s) for s in (0.5, 1.0, 2.0)]
    assert d == pytest.approx([8 * 0.25, 8 * 1.0, 8 * 4.0], rel=1e-6)    # |mu_a - mu_b|^2 = 8 s^2
    b = torch.randn(1000, 8, generator=g) * 2                             # same mean, 4x the variance
    assert metrics.frechet_distance(a, b) == pytest.approx(8.0, rel=0.2)  # tr(S_a + S_b - 2 sqrt) = 8 (1 + 4 - 4)
    with pytest.raises(ValueError, match="same feature size"):
        metrics.frechet_distance(a, a[:, :4])


def test_generated_looking_images_are_farther_than_the_floor():
    ref = evaluator.reference(500)
    floor = evaluator.frechet_floor(500)
    blurred = torch.nn.functional.avg_pool2d(ref.images, 3, stride=1, padding=1)
    assert evaluator.frechet(ref.images, ref.images) == pytest.approx(0.0, abs=1e-3)
    assert evaluator.frechet(blurred, ref.images) > 2 * floor > 0


def test_cache_saves_once_then_loads_with_weights_only(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    assert runtime.cache_dir() == tmp_path
    fits = []

    def build():
        torch.manual_seed(len(fits) + 1)                                  # a different init each build
        return nn.Linear(3, 2)

    def fit(m):
        fits.append(1)
        with torch.no_grad():
            m.weight.fill_(0.5)

    first = train.cached("toy", dict(mode="quick", width=3), build, fit)
    again = train.cached("toy", dict(mode="quick", width=3), build, fit)
    assert len(fits) == 1 and not first.from_cache and again.from_cache
    assert torch.equal(first.weight, again.weight) and not again.training
    path = train.cache_path("toy", dict(width=3, mode="quick"))               # key order does not matter
    assert path.exists() and path.parent == tmp_path
    torch.load(path, weights_only=True)                                       # plain tensors only
    other = train.cached("toy", dict(mode="lecture", width=3), build, fit)    # another config trains again
    assert len(fits) == 2 and not other.from_cache


def test_cache_retrains_when_the_file_does_not_fit_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    torch.save({"weight": torch.zeros(5, 5)}, train.cache_path("toy", {}))
    fits = []
    m = train.cached("toy", {}, lambda: nn.Linear(3, 2), lambda m: fits.append(1), verbose=False)
    assert fits == [1] and not m.from_cache
    with pytest.raises(ValueError, match="name"):
        train.cached("a/b", {}, lambda: nn.Linear(3, 2), lambda m: None)
    with pytest.raises(TypeError, match="JSON"):
        train.cache_path("toy", {"x": object()})


def test_shapes_prompts_and_captions_agree():
    s = data.shapes(50, seed=2)
    assert s.prompts.shape == (50, 4) and s.prompts.dtype == torch.long
    assert [data.prompt_caption(p) for p in s.prompts] == s.captions
    with pytest.raises(ValueError, match="4 indices"):
        data.prompt_caption([0, 6, 0, 0])


def test_render_prompts_draws_real_images_of_the_given_prompts():
    ref = evaluator.reference(200, seed=6)
    again = data.render_prompts(ref.prompts, seed=1)
    assert again.shape == ref.images.shape and not torch.equal(again, ref.images)   # another jitter
    assert evaluator.prompt_accuracy(again, ref.prompts) >= 0.95
    assert evaluator.frechet_floor(200, seed=6) < evaluator.frechet(ref.images, data.shapes(200, seed=99).images)
