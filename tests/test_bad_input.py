"""Bad input to the entry points of notebooks 04-10 (orders, heads, OT, the evaluator, the recipes a
notebook calls) gets a clear error at the door: the right type (TypeError for a wrong type, ValueError
for a wrong value or shape) and a message that names the argument the learner passed (issue 21).
Every case is built from tiny untrained parts: nothing here trains or loads a cached model."""
import math

import pytest
import torch

from course_lib import evaluator, flow, heads
from course_lib.heads import backbone
from course_lib.nets.transformer import Config
from course_lib.orders import continuous, gpt, infinity, maskgit, var
from course_lib.orders import prompt as P

SCALES = (1, 2, 3)
TINY = Config(d_model=32, n_layer=1, n_head=4)
CONT = continuous.ContinuousConfig(latent_dim=3, n_tokens=5, d_model=32, n_layer=1, n_head=4)
NAN = float("nan")


def _prompts(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(k, (n,), generator=g) for k in P.N_VALUES], 1)


def _g():
    return torch.Generator().manual_seed(0)


def raises(kind, name, fn):
    """fn() raises ``kind`` and the message names ``name`` (the argument the learner passed)."""
    with pytest.raises(kind) as info:
        fn()
    assert name in str(info.value), f"the message does not name {name!r}: {info.value}"


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    return dict(
        gpt=gpt.TokenGPT(gpt.GPTConfig(vocab_size=16, n_tokens=5, d_model=32, n_layer=1, n_head=4)),
        maskgit=maskgit.MaskGIT(maskgit.MaskGITConfig(codebook_size=16, n_tokens=16, d_model=32, n_layer=1, n_head=4)),
        vq=var.MultiScaleVQ(16, 4, SCALES), var=var.VAR(16, 4, SCALES, TINY),
        bsq=infinity.MultiScaleBSQ(4, SCALES), inf=infinity.Infinity(4, SCALES, TINY),
        ar=continuous.ContinuousAR(CONT), mar=backbone.MaskedAR(CONT),
        head=heads.FlowHead(3, 32, width=16, depth=1))


def _generators(m):
    """Every generate of the orders, as fn(prompts, **kw)."""
    return {
        "gpt": lambda p, **kw: gpt.generate(m["gpt"], p, **kw),
        "maskgit": lambda p, **kw: maskgit.generate(m["maskgit"], p, steps=2, **kw),
        "var": lambda p, **kw: var.generate(m["var"], m["vq"], p, **kw),
        "infinity": lambda p, **kw: infinity.generate(m["inf"], m["bsq"], p, **kw),
        "continuous": lambda p, **kw: continuous.generate(m["ar"], m["head"], p, **kw),
        "masked": lambda p, **kw: backbone.generate(m["mar"], m["head"], p, steps=2, **kw),
    }


GENERATORS = ["gpt", "maskgit", "var", "infinity", "continuous", "masked"]


# ----------------------------------------------------------------------------- ids and targets in range

def test_maskgit_loss_refuses_the_mask_id_as_a_target(parts):
    tokens = torch.randint(16, (2, 16))
    tokens[0, 3] = 16                                                      # the [MASK] id
    raises(ValueError, "tokens", lambda: maskgit.loss(parts["maskgit"], tokens, _prompts(2)))


@pytest.mark.parametrize("bad", [16, -1])
def test_var_loss_and_decode_codes_refuse_codes_outside_the_codebook(parts, bad):
    codes = torch.randint(16, (2, 14))
    inputs = parts["vq"].teacher_inputs(codes)
    codes[1, 5] = bad                                                      # -1 would read the last code
    raises(ValueError, "codes", lambda: parts["var"].loss(codes, inputs, _prompts(2)))
    raises(ValueError, "codes", lambda: parts["vq"].decode_codes(codes))


def test_infinity_loss_and_decode_bits_refuse_labels_other_than_0_and_1(parts):
    sc = infinity.self_correct(parts["bsq"], torch.randn(2, 3, 3, 4), 0.0)
    labels = sc.labels.clone()
    labels[0, 0, 0] = 2
    raises(ValueError, "labels", lambda: parts["inf"].loss(labels, sc.inputs, _prompts(2)))
    raises(ValueError, "bits", lambda: parts["bsq"].decode_bits(labels))
    raises(ValueError, "labels", lambda: parts["inf"].loss(-sc.labels, sc.inputs, _prompts(2)))


def test_gpt_refuses_tokens_and_forced_tokens_outside_the_vocabulary(parts):
    raises(ValueError, "tokens", lambda: gpt.loss(parts["gpt"], torch.full((2, 5), 16), _prompts(2)))
    raises(ValueError, "force", lambda: gpt.generate(parts["gpt"], _prompts(2), force=torch.full((2, 5), -2)))


def test_prompt_attributes_out_of_range_are_named(parts):
    p = _prompts(2)
    p[0, 2] = 10                                                           # position has 9 values (+ null)
    raises(ValueError, "prompts[:, 2] (position)", lambda: gpt.generate(parts["gpt"], p))


# ----------------------------------------------------------------------------- prompt width and type

@pytest.mark.parametrize("name", GENERATORS)
def test_prompts_of_the_wrong_width_are_named_before_the_null_prompt_is_added(parts, name):
    gen = _generators(parts)[name]
    raises(ValueError, "prompts", lambda: gen(torch.zeros(2, 3, dtype=torch.long), cfg_scale=2.0))
    raises(ValueError, "prompts", lambda: gen(torch.zeros(2, 5, dtype=torch.long), cfg_scale=2.0))


@pytest.mark.parametrize("name", GENERATORS)
def test_a_python_list_of_prompts_is_named(parts, name):
    raises(TypeError, "prompts", lambda: _generators(parts)[name]([[0, 1, 2, 0]]))


# ----------------------------------------------------------------------------- batch >= 1

@pytest.mark.parametrize("name", GENERATORS)
def test_an_empty_batch_of_prompts_is_named(parts, name):
    raises(ValueError, "prompts", lambda: _generators(parts)[name](torch.zeros(0, 4, dtype=torch.long)))


def test_empty_batches_elsewhere_are_named(parts):
    raises(ValueError, "z", lambda: parts["head"].sample(torch.zeros(0, 32)))
    raises(ValueError, "x1", lambda: flow.minibatch_ot(torch.zeros(0, 2), torch.zeros(0, 2)))
    raises(ValueError, "images", lambda: evaluator.prompt_accuracy(torch.zeros(0, 3, 16, 16), torch.zeros(0, 4).long()))
    raises(ValueError, "tokens", lambda: parts["maskgit"](torch.zeros(0, 16, dtype=torch.long), _prompts(1)[:0]))


def test_prompts_and_tokens_of_different_batch_sizes_are_named(parts):
    raises(ValueError, "prompts", lambda: gpt.loss(parts["gpt"], torch.zeros(3, 5, dtype=torch.long), _prompts(2)))
    raises(ValueError, "prompts", lambda: continuous.loss(parts["ar"], parts["head"], torch.randn(3, 5, 3), _prompts(2)))
    raises(ValueError, "prompts", lambda: maskgit.loss(parts["maskgit"], torch.zeros(3, 16, dtype=torch.long), _prompts(2)))


# ----------------------------------------------------------------------------- steps, temperature, generator

def test_steps_zero_is_refused_not_replaced_by_the_default(parts):
    raises(ValueError, "steps", lambda: parts["head"].sample(torch.randn(2, 32), steps=0))
    raises(ValueError, "steps", lambda: parts["head"].nfe(0))
    raises(ValueError, "steps", lambda: maskgit.generate(parts["maskgit"], _prompts(1), steps=0))
    raises(ValueError, "steps", lambda: backbone.generate(parts["mar"], parts["head"], _prompts(1), steps=0))
    raises(ValueError, "head_steps", lambda: backbone.generate(parts["ar"], parts["head"], _prompts(1), head_steps=0))


@pytest.mark.parametrize("name", GENERATORS)
def test_a_negative_temperature_is_refused(parts, name):
    raises(ValueError, "temperature", lambda: _generators(parts)[name](_prompts(1), temperature=-0.5))


def test_temperature_zero_where_it_divides_is_refused(parts):
    raises(ValueError, "temperature", lambda: infinity.generate(parts["inf"], parts["bsq"], _prompts(1), temperature=0.0))
    raises(ValueError, "temperature", lambda: gpt.generate(parts["gpt"], _prompts(1), temperature=0.0))


@pytest.mark.parametrize("name", GENERATORS)
def test_a_generator_that_is_not_a_torch_generator_is_named(parts, name):
    raises(TypeError, "generator", lambda: _generators(parts)[name](_prompts(1), generator=0))


def test_a_head_generator_and_cfg_scale_are_checked():
    head = heads.EnergyHead(3, 8, width=8, depth=1)
    raises(TypeError, "generator", lambda: head.sample(torch.randn(2, 8), generator=0))
    raises(TypeError, "generator", lambda: head.loss(torch.randn(2, 3), torch.randn(2, 8), generator=1))
    raises(TypeError, "cfg_scale", lambda: head.sample(torch.randn(2, 8), cfg_scale="2"))
    raises(ValueError, "temperature", lambda: head.sample(torch.randn(2, 8), temperature=-1.0))


# ----------------------------------------------------------------------------- parts that fit each other

def test_a_quantizer_of_another_size_than_the_model_is_named(parts):
    raises(ValueError, "quantizer", lambda: var.generate(parts["var"], var.MultiScaleVQ(32, 4, SCALES), _prompts(1)))
    raises(ValueError, "quantizer", lambda: var.generate(parts["var"], var.MultiScaleVQ(16, 8, SCALES), _prompts(1)))
    raises(ValueError, "quantizer", lambda: var.generate(parts["var"], var.MultiScaleVQ(16, 4, (1, 2)), _prompts(1)))
    raises(ValueError, "quantizer", lambda: infinity.generate(parts["inf"], infinity.MultiScaleBSQ(6, SCALES), _prompts(1)))


def test_a_head_of_another_size_than_the_model_is_named(parts):
    wrong = heads.MSEHead(3, 16, width=8)                                 # cond_dim 16, the model's d_model is 32
    raises(ValueError, "head", lambda: continuous.generate(parts["ar"], wrong, _prompts(1)))
    raises(ValueError, "head", lambda: continuous.loss(parts["ar"], wrong, torch.randn(1, 5, 3), _prompts(1)))
    raises(ValueError, "head", lambda: backbone.loss(parts["mar"], wrong, torch.randn(1, 5, 3), _prompts(1)))
    raises(ValueError, "head", lambda: backbone.generate(parts["mar"], heads.MSEHead(4, 32), _prompts(1)))
    raises(TypeError, "head", lambda: continuous.generate(parts["ar"], torch.nn.Linear(32, 3), _prompts(1)))
    raises(ValueError, "cond_dim", lambda: wrong.loss(torch.randn(2, 3), torch.randn(2, 32)))


def test_inputs_of_another_width_than_the_model_are_named(parts):
    raises(ValueError, "inputs", lambda: parts["var"](torch.randn(2, 4, 8), _prompts(2)))


# ----------------------------------------------------------------------------- NaN where it would pass silently

def test_nan_latents_do_not_become_code_zero_or_all_zero_bits(parts):
    z = torch.randn(2, 3, 3, 4)
    z[0, 1, 1, 2] = NAN
    raises(ValueError, "z", lambda: parts["vq"](z))
    raises(ValueError, "z", lambda: parts["vq"].encode_scales(z))
    raises(ValueError, "z", lambda: parts["bsq"](z))
    raises(ValueError, "z", lambda: infinity.self_correct(parts["bsq"], z))


def test_ot_refuses_nan_instead_of_collapsing_the_pairs():
    x0, x1 = torch.randn(8, 2), torch.randn(8, 2)
    x1[3, 0] = NAN
    raises(ValueError, "x1", lambda: flow.minibatch_ot(x0, x1, block=None))
    raises(ValueError, "x0", lambda: flow.minibatch_ot(x1, x0, block=4))


def test_nan_tokens_into_a_loss_are_named(parts):
    x = torch.randn(2, 5, 3)
    x[1, 2, 0] = NAN
    raises(ValueError, "latents", lambda: continuous.loss(parts["ar"], parts["head"], x, _prompts(2)))
    raises(ValueError, "x", lambda: parts["head"].loss(x.reshape(-1, 3), torch.randn(10, 32)))


# ----------------------------------------------------------------------------- shapes that would broadcast

def test_a_loss_given_x_without_its_batch_dimension_is_refused(parts):
    raises(ValueError, "tokens", lambda: gpt.loss(parts["gpt"], torch.zeros(5, dtype=torch.long), _prompts(1)))
    raises(ValueError, "latents", lambda: continuous.loss(parts["ar"], parts["head"], torch.randn(5, 3), _prompts(1)))
    raises(ValueError, "z", lambda: parts["head"].loss(torch.randn(3), torch.randn(32)))
    raises(ValueError, "codes", lambda: parts["var"].loss(torch.zeros(14, dtype=torch.long), torch.randn(1, 13, 4),
                                                         _prompts(1)))
    raises(ValueError, "x", lambda: parts["head"].loss(torch.randn(1, 3), torch.randn(4, 32)))   # one token, 4 z


def test_one_noise_vector_for_every_row_is_refused():
    raises(ValueError, "x0", lambda: flow.minibatch_ot(torch.randn(2), torch.randn(8, 2)))
    raises(ValueError, "z_uncond", lambda: heads.MSEHead(3, 8).sample(torch.randn(4, 8), z_uncond=torch.randn(1, 8),
                                                                      cfg_scale=2.0))


# ----------------------------------------------------------------------------- the evaluator's value range

@pytest.mark.parametrize("low,high", [(0.0, 255.0), (-1.0, 1.0)])
def test_the_evaluator_refuses_images_outside_0_1(low, high):
    images = low + (high - low) * torch.rand(4, 3, 16, 16)
    raises(ValueError, "images", lambda: evaluator.prompt_accuracy(images, _prompts(4)))
    raises(ValueError, "images_a", lambda: evaluator.frechet(images, torch.rand(4, 3, 16, 16)))


def test_the_evaluator_refuses_nan_images():
    images = torch.rand(4, 3, 16, 16)
    images[2] = NAN
    raises(ValueError, "images", lambda: evaluator.prompt_accuracy(images, _prompts(4)))
    raises(ValueError, "images", lambda: evaluator.attribute_accuracy(images, _prompts(4)))


def test_the_evaluator_accepts_rounding_at_the_edges_of_0_1():
    images = torch.rand(2, 3, 16, 16)
    images[0, 0, 0, 0], images[1, 0, 0, 0] = -1e-5, 1 + 1e-5
    assert evaluator.check_images(images) is images


# ----------------------------------------------------------------------------- recipe functions a notebook calls

def test_recipes_name_a_python_list_of_prompts(parts):
    from course_lib.recipes import chaining_tokens, next_scale
    raises(TypeError, "prompts", lambda: chaining_tokens.sample(parts["gpt"], [[0, 1, 2, 0]]))
    raises(TypeError, "prompts", lambda: next_scale.generate_images("var", parts["var"], [[0, 1, 2, 0]]))


@pytest.mark.parametrize("step", [-1, 2, 2.0])
def test_maskgit_partial_images_refuses_a_step_out_of_range_or_negative(step):
    from course_lib.recipes import maskgit as recipe
    decoded = maskgit.Decoded(tokens=torch.zeros(1, 16, dtype=torch.long), order=torch.zeros(1, 16, dtype=torch.long),
                              guesses=torch.zeros(2, 1, 16, dtype=torch.long), masked=[16, 8, 0], nfe=2)
    raises(ValueError, "step", lambda: recipe.partial_images(decoded, step))


def test_a_method_name_does_not_take_another_methods_path(parts):
    from course_lib.recipes import next_scale
    raises(ValueError, "kind", lambda: next_scale.generate_images("VAR", parts["var"], _prompts(1)))
    raises(ValueError, "kind", lambda: next_scale.evaluate("bitwise", parts["inf"]))


def test_a_null_id_does_not_map_to_another_class():
    from course_lib.recipes import meanflow
    p = _prompts(2)
    assert meanflow.prompt_class(p).max() < math.prod(P.N_VALUES)
    p[1, 0] = P.N_VALUES[0]                                                # the null shape
    raises(ValueError, "prompts[:, 0] (shape)", lambda: meanflow.prompt_class(p))


# ----------------------------------------------------------------------------- flow/: guidance, the loss, reflow (review R1)

class _Labelled(torch.nn.Module):
    """A conditional velocity with classes 0-2 and the null class 3 that ignores its labels: a wrong
    label or label count would pass it silently, so the door must catch it."""
    null_class = 3

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x, t, y=None):
        return self.lin(torch.cat([x, t[:, None]], 1))


def test_flow_generators_that_are_not_torch_generators_are_named():
    m = _Labelled()
    raises(TypeError, "generator", lambda: flow.sample_time(4, generator=0))
    raises(TypeError, "generator", lambda: flow.drop_labels(torch.zeros(4, dtype=torch.long), 0.5, 3, generator=0))
    raises(TypeError, "generator", lambda: flow.loss(m, torch.randn(4, 2), generator=0))


def test_flow_loss_names_the_arguments_the_learner_passed():
    m = _Labelled()
    raises(ValueError, "x1", lambda: flow.loss(m, torch.zeros(0, 2)))                   # was "n: ..."
    raises(ValueError, "time", lambda: flow.loss(m, torch.randn(4, 2), time="lognorm"))  # was "kind: ..."
    raises(ValueError, "p_uncond", lambda: flow.loss(m, torch.randn(4, 2), y=torch.zeros(4, dtype=torch.long),
                                                     p_uncond=2.0))
    raises(ValueError, "x0", lambda: flow.loss(m, torch.randn(4, 2), x0=torch.randn(2)))  # was "x_0: ..."
    raises(ValueError, "x0", lambda: flow.fm_pair(torch.randn(2), torch.randn(4, 2), torch.rand(4)))


def test_labels_that_do_not_fit_are_named_not_ignored():
    m, x, t = _Labelled(), torch.randn(4, 2), torch.rand(4)
    raises(ValueError, "y", lambda: flow.loss(m, x, y=torch.zeros(3, dtype=torch.long)))
    raises(ValueError, "y", lambda: flow.guided_velocity(m, x, t, torch.zeros(3, dtype=torch.long), 2.0))
    raises(ValueError, "y", lambda: flow.guided_velocity(m, x, t, torch.zeros(1, dtype=torch.long), 1.0))
    raises(TypeError, "y", lambda: flow.field(m, 1.5, w=2.0))
    raises(ValueError, "y", lambda: flow.field(m, 7, w=2.0))                       # classes 0-2, null 3
    raises(TypeError, "y", lambda: flow.drop_labels(torch.zeros(4), 0.5, 3))           # float labels
    raises(ValueError, "y", lambda: flow.drop_labels(torch.full((4,), 5, dtype=torch.long), 0.5, 3))


def test_a_nan_number_is_refused_where_a_number_is_checked():
    m = _Labelled()
    raises(ValueError, "w", lambda: flow.guided_velocity(m, torch.randn(4, 2), torch.rand(4),
                                                         torch.zeros(4, dtype=torch.long), NAN))
    raises(ValueError, "cfg_scale", lambda: heads.MSEHead(3, 8).sample(torch.randn(2, 8), cfg_scale=NAN))


def test_reflow_refuses_zero_steps_and_batches():
    m = _Labelled()
    raises(ValueError, "batch", lambda: flow.reflow_pairs(lambda x, t: -x, 4, 2, batch=0))
    raises(ValueError, "steps", lambda: flow.reflow(m, torch.randn(4, 2), torch.randn(4, 2), 0))
    raises(ValueError, "batch", lambda: flow.reflow(m, torch.randn(4, 2), torch.randn(4, 2), 2, batch=0))


# ----------------------------------------------------------------------------- metrics, codes, MaskGIT's steps, sampling (review R1)

def test_metrics_name_what_would_fail_inside_or_pass_silently():
    from course_lib import metrics
    x = torch.randn(8, 2)
    raises(TypeError, "x", lambda: metrics.psnr([0.1], torch.rand(1)))                      # was AttributeError
    raises(ValueError, "max_value", lambda: metrics.psnr(torch.rand(4), torch.rand(4), max_value=0))   # math domain
    raises(ValueError, "max_value", lambda: metrics.psnr(torch.rand(8) * 255, torch.rand(8) * 255))  # -41 dB
    raises(ValueError, "y", lambda: metrics.psnr(torch.rand(4, 1), torch.rand(1, 4)))
    raises(ValueError, "reference", lambda: metrics.snr_db(torch.zeros(0), torch.zeros(0)))    # was inf
    raises(ValueError, "codes", lambda: metrics.code_histogram(torch.tensor([0, 5]), 4))       # was 6 bins
    raises(ValueError, "codes", lambda: metrics.usage(torch.tensor([0, -1]), 4))               # bincount error
    raises(TypeError, "codes", lambda: metrics.perplexity(torch.tensor([0.0, 1.0]), 4))
    raises(ValueError, "codes", lambda: metrics.perplexity(torch.zeros(0, dtype=torch.long), 4))  # was 1.0
    raises(ValueError, "directions", lambda: metrics.sliced_wasserstein(x, x, 0))             # was "n: ..."
    raises(ValueError, "x", lambda: metrics.sliced_wasserstein(torch.zeros(0, 2), x))         # ZeroDivisionError
    raises(ValueError, "x", lambda: metrics.grid_tv(torch.zeros(0, 2), x))                    # was 0.5
    raises(ValueError, "y", lambda: metrics.mmd(x, torch.randn(8, 3)))                         # cdist error
    raises(ValueError, "bandwidths", lambda: metrics.mmd(x, x, bandwidths=(0.0,)))             # was nan
    raises(ValueError, "n", lambda: metrics.noise_floor(lambda n, seed: torch.randn(n, 2), 0))  # was nan
    raises(ValueError, "feats_a", lambda: metrics.frechet_distance(torch.randn(1, 2), torch.randn(8, 2)))
    raises(ValueError, "images_a", lambda: evaluator.frechet(torch.rand(1, 3, 16, 16), torch.rand(4, 3, 16, 16)))


def test_nearest_code_and_kmeans_refuse_what_would_become_code_zero_or_an_index_error():
    from course_lib.tokens import vq
    z = torch.randn(4, 2)
    z[1, 0] = NAN
    raises(ValueError, "z", lambda: vq.nearest_code(z, torch.randn(5, 2)))                     # was code 0
    raises(ValueError, "codebook", lambda: vq.nearest_code(torch.randn(4, 2), torch.randn(0, 2)))
    raises(ValueError, "k", lambda: vq.kmeans(torch.randn(10, 2), 0))                          # argmin IndexError
    raises(ValueError, "iters", lambda: vq.kmeans(torch.randn(10, 2), 2, iters=-1))
    raises(ValueError, "x", lambda: vq.kmeans(torch.full((10, 2), NAN), 2))


def test_maskgit_steps_refuse_what_would_mask_decided_tokens_or_fail_inside():
    conf, known = torch.rand(2, 8), torch.zeros(2, 8, dtype=torch.bool)
    raises(ValueError, "n_mask", lambda: maskgit.choose_to_mask(conf, known, 3))                # masked decided ones
    raises(ValueError, "n_mask", lambda: maskgit.choose_to_mask(conf, ~known, 9))               # topk error
    raises(ValueError, "n_mask", lambda: maskgit.choose_to_mask(conf, ~known, -1))
    raises(TypeError, "unknown", lambda: maskgit.choose_to_mask(conf, torch.ones(2, 8), 2))
    raises(ValueError, "unknown", lambda: maskgit.choose_to_mask(conf, torch.ones(2, 7, dtype=torch.bool), 2))
    raises(ValueError, "r", lambda: maskgit.gamma(1.5))                                           # was -0.71
    raises(ValueError, "n_examples", lambda: maskgit.random_mask(0, 16))
    raises(TypeError, "generator", lambda: maskgit.random_mask(2, 16, generator=0))
    raises(TypeError, "generator", lambda: maskgit.gumbel((2, 3), generator=0))
    logits, targets, mask = torch.randn(2, 4, 8), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.bool)
    raises(ValueError, "targets", lambda: maskgit.masked_loss(logits, torch.full((2, 4), 8), mask))   # IndexError
    raises(ValueError, "label_smoothing", lambda: maskgit.masked_loss(logits, targets, mask, 2.0))
    raises(ValueError, "mask", lambda: maskgit.masked_loss(logits, targets, ~mask))                 # was NaN
    raises(TypeError, "mask", lambda: maskgit.masked_loss(logits, targets, mask.float()))


def test_sampling_names_nan_logits():
    from course_lib.nets import sampling
    raises(ValueError, "logits", lambda: sampling.sample_logits(torch.full((2, 8), NAN), 1.0))   # multinomial error
    assert sampling.sample_logits(torch.tensor([[0.0, -math.inf]]), 1.0).item() == 0           # -inf is a filtered value


def test_plots_and_renderers_name_what_would_fail_inside_or_become_a_default():
    import matplotlib
    matplotlib.use("Agg")
    from course_lib import data, viz
    raises(ValueError, "nrow", lambda: viz.image_grid(torch.rand(4, 3, 16, 16), nrow=0))      # was the default
    raises(ValueError, "images", lambda: viz.image_grid(torch.rand(16, 16)))
    raises(ValueError, "lim", lambda: viz.vector_field(lambda x, t: x, lim=0))                 # ZeroDivisionError
    raises(ValueError, "n", lambda: viz.vector_field(lambda x, t: x, n=0))                     # IndexError
    raises(ValueError, "prompts[:, 0] (shape)", lambda: data.render_prompts(P.null_prompts(2)))  # IndexError
    for head in (heads.MSEHead(3, 8, width=8), heads.EnergyHead(3, 8, width=8, depth=1)):
        raises(ValueError, "steps", lambda: head.nfe(-1))                                    # was 1


def test_more_recipe_functions_a_notebook_calls_name_their_arguments():
    from course_lib.recipes import chaining_tokens, flow_matching_2d as f2, limit_of_tokens
    from course_lib.recipes import maskgit as recipe
    raises(ValueError, "groups", lambda: chaining_tokens.diversity(torch.rand(5, 3, 16, 16), 2))  # reshape error
    raises(ValueError, "groups", lambda: chaining_tokens.diversity(torch.rand(4, 3, 16, 16), 0))
    raises(TypeError, "decided", lambda: recipe.cell_mask(torch.rand(2, 16)))                      # was a float mask
    raises(ValueError, "decided", lambda: recipe.cell_mask(torch.ones(2, 15, dtype=torch.bool)))   # view error
    decoded = maskgit.Decoded(tokens=torch.zeros(1, 16, dtype=torch.long), order=torch.zeros(1, 16, dtype=torch.long),
                              guesses=torch.zeros(2, 1, 16, dtype=torch.long), masked=[16, 8, 0], nfe=2)
    raises(ValueError, "images", lambda: recipe.order_by_content(decoded, torch.rand(2, 3, 16, 16)))  # IndexError
    raises(ValueError, "threshold", lambda: recipe.order_by_content(decoded, torch.rand(1, 3, 16, 16), -1))  # nan
    raises(ValueError, "n", lambda: recipe.latency(lambda p: p, _prompts(2), n=0))
    raises(TypeError, "x", lambda: f2.same_radii_disk([[0.0, 1.0]]))                              # AttributeError
    raises(ValueError, "x", lambda: f2.same_radii_disk(torch.randn(4, 3)))                        # silently 2-D
    raises(ValueError, "radius", lambda: f2.same_radii_disk(torch.randn(4, 2), radius=-1.0))
    raises(ValueError, "name", lambda: f2.toy_data("spiral"))                                    # failed later
    raises(ValueError, "y", lambda: f2.class_accuracy(torch.randn(4, 2), torch.zeros(3, dtype=torch.long),
                                                      torch.randn(3, 2)))
    raises(ValueError, "y", lambda: f2.class_accuracy(torch.randn(4, 2), torch.full((4,), 7), torch.randn(3, 2)))
    raises(ValueError, "x", lambda: f2.to_images(torch.randn(4, 10)))                             # view error
    raises(ValueError, "times", lambda: f2.loss_by_time(lambda x, t: x, [1.5], n=8))
    raises(ValueError, "n", lambda: f2.guided_samples(lambda x, t, y=None: x, 2.0, 0))
    raises(ValueError, "threshold", lambda: limit_of_tokens.clean_rate(torch.rand(2, 3, 16, 16), threshold=-1))
    raises(ValueError, "kind", lambda: limit_of_tokens.build("MSE", limit_of_tokens.budget("quick")))


def test_the_losses_name_p_null_and_refuse_a_prefix_of_an_image(parts):
    tokens = torch.zeros(2, 5, dtype=torch.long)
    raises(ValueError, "p_null", lambda: gpt.loss(parts["gpt"], tokens, _prompts(2), p_null=2.0))      # was "p"
    raises(ValueError, "p_null", lambda: maskgit.loss(parts["maskgit"], torch.zeros(2, 16, dtype=torch.long),
                                                      _prompts(2), p_null=-1.0))
    raises(ValueError, "p_null", lambda: continuous.loss(parts["ar"], parts["head"], torch.randn(2, 5, 3), _prompts(2),
                                                         p_null=1.5))
    raises(ValueError, "p_null", lambda: backbone.loss(parts["mar"], parts["head"], torch.randn(2, 5, 3), _prompts(2),
                                                       p_null=1.5))
    raises(ValueError, "tokens", lambda: gpt.loss(parts["gpt"], tokens[:, :4], _prompts(2)))            # trained silently
    raises(ValueError, "latents", lambda: continuous.loss(parts["ar"], parts["head"], torch.randn(2, 4, 3), _prompts(2)))


def test_quantizers_bits_and_pixel_helpers_refuse_silent_codes_and_raw_errors():
    from course_lib.pixels import pixel_ar, wavenet
    from course_lib.tokens import bitwise, losses, tokenizers
    z = torch.randn(2, 4)
    z[1, 2] = NAN
    for q in (bitwise.BSQ(4), bitwise.LFQ(4), bitwise.FSQ(levels=(8, 5, 5, 5))):
        raises(ValueError, "z", lambda: q(z))                       # was code 0 / bits 0 (FSQ: named 'codes')
    raises(ValueError, "bits", lambda: bitwise.bits_to_index(torch.full((2, 4), 2)))       # silently 30
    raises(TypeError, "bits", lambda: bitwise.bits_to_index(torch.rand(2, 4)))
    raises(ValueError, "index", lambda: bitwise.index_to_bits(torch.tensor([300]), 4))      # cut to 4 bits
    raises(ValueError, "index", lambda: bitwise.index_to_bits(torch.tensor([-1]), 4))
    assert bitwise.index_to_bits(torch.tensor([-1]), 64).sum() == 64                     # int64's two's complement
    net = pixel_ar.PixelCNN(levels=17, channels=8, n_layers=2, n_classes=10)
    images = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    raises(TypeError, "images", lambda: pixel_ar.evaluate_bpd(net, images.float()))      # was named 'targets'
    raises(ValueError, "images", lambda: pixel_ar.evaluate_bpd(net, images[:0]))          # ZeroDivisionError
    raises(ValueError, "batch", lambda: pixel_ar.evaluate_bpd(net, images, batch=0))      # range() error
    raises(ValueError, "labels", lambda: pixel_ar.evaluate_bpd(net, images, labels=torch.zeros(3, dtype=torch.long)))
    raises(ValueError, "i", lambda: pixel_ar.dependence(lambda x: torch.zeros(1, 17, 8, 8), 8, 8, 9, 0))  # IndexError
    raises(ValueError, "levels", lambda: wavenet.marginal_bits(torch.tensor([300]), torch.tensor([0, 1])))
    raises(ValueError, "train_levels", lambda: wavenet.marginal_bits(torch.tensor([0]), torch.zeros(0, dtype=torch.long)))
    raises(ValueError, "batch", lambda: wavenet.random_windows(torch.randn(2, 100), 0, 20, _g()))
    raises(TypeError, "generator", lambda: wavenet.random_windows(torch.randn(2, 100), 4, 20, 0))
    raises(ValueError, "codebook_size", lambda: tokenizers.bits_per_item(16, 0))          # math domain error
    raises(ValueError, "x", lambda: losses.multi_resolution_stft_loss(torch.randn(2, 30), torch.randn(2, 30)))


def test_generation_heads_toy_and_build_name_their_arguments():
    from course_lib.recipes import generation_heads as R
    head = heads.make("mse", 2, 3)
    for call, name in [(lambda: R.toy_data(0), "n"), (lambda: R.toy_data(4, generator=0), "generator"),
                       (lambda: R.fit_toy(head, steps=0), "steps"), (lambda: R.fit_toy(head, 1, batch=0), "batch"),
                       (lambda: R.on_modes(head, n=0), "n"), (lambda: R.on_modes(head, steps=0), "steps"),
                       (lambda: R.build(R.budget("quick"), "raster", "diffusion"), "kind"),
                       (lambda: R.build(R.budget("quick"), "zigzag", "mse"), "order")]:
        with pytest.raises((ValueError, TypeError)) as e:
            call()
        assert str(e.value).startswith(f"{name}"), (name, str(e.value))
