"""Notebook 08's exercises: each known mistake (Exercise.mistakes, in course_lib/course/exercises/flow.py)
is caught with its own message and each correct alternative passes (tests/mistakes.py); the wrong answers
below are not named mistakes but kinds the checks must catch (an input changed in place, a device, a
dtype, a size); the correct ones, written otherwise than the reference, pass. tests/test_homework.py
runs WRONG and CORRECT_ANSWERS."""
import torch
import torch.nn.functional as F

from course_lib.course import homework
from course_lib.course.exercises import flow as topic
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(topic)


# ----------------------------------------------------------------------------- flow.fm_pair

def pair_in_place(x0, x1, t):              # builds x_t in the caller's noise
    tt = t[:, None]
    target = x1 - x0
    x_t = x0.mul_(1 - tt).add_(tt * x1)
    return x_t, target


def pair_unsqueeze_in_place(x0, x1, t):    # t.unsqueeze_ changes the caller's t
    t.unsqueeze_(1)
    return (1 - t) * x0 + t * x1, x1 - x0


def pair_two_columns(x0, x1, t):           # the times repeated for 2 columns: right in 2-D only
    tt = torch.stack([t, t], dim=1)
    return (1 - tt) * x0 + tt * x1, x1 - x0


def pair_target_from_x_t(x0, x1, t):       # the velocity as (x_t - x0) / t: nan at t = 0
    tt = t[:, None]
    x_t = (1 - tt) * x0 + tt * x1
    return x_t, (x_t - x0) / tt


def pair_cpu_ones(x0, x1, t):              # a tensor of ones on the CPU, float32
    tt = t[:, None]
    return (torch.ones(x0.shape[0], 1) - tt) * x0 + tt * x1, x1 - x0


def pair_float32_inside(x0, x1, t):        # the times in float32, the result cast back
    tt = t.float()[:, None]
    return ((1 - tt) * x0.float() + tt * x1.float()).to(x0.dtype), x1 - x0


def pair_float32_canvas(x0, x1, t):        # fills a new float32 tensor
    x_t = torch.empty(x0.shape, device=x0.device)
    for i in range(x0.shape[0]):
        x_t[i] = (1 - t[i]) * x0[i] + t[i] * x1[i]
    return x_t, x1 - x0


# ----------------------------------------------------------------------------- flow.euler_sample

def _times(x, s):
    return torch.full((x.shape[0],), s, device=x.device)


def euler_one_step_short(v, x0, steps):    # off by one: stops at 1 - h
    x, h = x0, 1.0 / steps
    for k in range(steps - 1):
        x = x + h * v(x, _times(x, k * h))
    return x


def euler_frozen_velocity(v, x0, steps):   # evaluates v once at x0 and reuses it
    h = 1.0 / steps
    v0 = v(x0, _times(x0, 0.0))
    x = x0
    for k in range(steps):
        x = x + h * v0
    return x


def euler_in_place(v, x0, steps):          # x = x0 is no copy: += moves the caller's noise
    x, h = x0, 1.0 / steps
    for k in range(steps):
        x += h * v(x, _times(x, k * h))
    return x


def euler_fixed_batch(v, x0, steps):       # one time per point for a batch of 6
    x, h = x0, 1.0 / steps
    for k in range(steps):
        x = x + h * v(x, torch.full((6,), k * h))
    return x


def euler_cpu_times(v, x0, steps):         # the times on the CPU
    x, h = x0, 1.0 / steps
    for k in range(steps):
        x = x + h * v(x, torch.full((x.shape[0],), k * h))
    return x


def euler_float32_canvas(v, x0, steps):    # keeps every position in a float32 tensor
    h = 1.0 / steps
    xs = torch.zeros(steps + 1, *x0.shape, device=x0.device)
    xs[0] = x0
    for k in range(steps):
        xs[k + 1] = xs[k] + h * v(xs[k], _times(x0, k * h))
    return xs[-1]


def euler_float16_times(v, x0, steps):     # times in float16: exact enough for a few steps, not for 100
    x, h = x0, 1.0 / steps
    for k in range(steps):
        x = x + h * v(x, torch.full((x.shape[0],), k * h, device=x.device, dtype=torch.float16))
    return x


def euler_float_time(v, x0, steps):        # hands v a float time
    x, h = x0, 1.0 / steps
    for k in range(steps):
        x = x + h * v(x, k * h)
    return x


# ----------------------------------------------------------------------------- flow.guided_velocity

def cfg_fills_y(model, x, t, y, w):        # turns the caller's labels into the null class
    v_c = model(x, t, y)
    v_u = model(x, t, y.fill_(model.null_class))
    return v_u + w * (v_c - v_u)


def cfg_null_on_cpu(model, x, t, y, w):    # null labels made on the CPU
    v_c = model(x, t, y)
    v_u = model(x, t, torch.full((x.shape[0],), model.null_class))
    return v_u + w * (v_c - v_u)


def cfg_null_batch_of_six(model, x, t, y, w):   # null labels for a batch of 6
    v_c = model(x, t, y)
    v_u = model(x, t, torch.full((6,), model.null_class, device=x.device))
    return v_u + w * (v_c - v_u)


def cfg_float32(model, x, t, y, w):        # casts the points to float32
    x, t = x.float(), t.float()
    v_c, v_u = model(x, t, y), model(x, t, None)
    return v_u + w * (v_c - v_u)


def cfg_ten_as_null(model, x, t, y, w):    # a null class number from another model
    v_c, v_u = model(x, t, y), model(x, t, torch.full_like(y, 10))
    return v_u + w * (v_c - v_u)


# ----------------------------------------------------------------------------- flow.sliced_wasserstein

def _unit(directions):
    return directions / directions.norm(dim=0, keepdim=True)


def swd_normalise_in_place(x, y, directions):   # divides the caller's directions
    directions /= directions.norm(dim=0, keepdim=True)
    return (torch.sort(x @ directions, 0).values - torch.sort(y @ directions, 0).values).pow(2).mean().sqrt()


def swd_item(x, y, directions):            # a Python float
    d = _unit(directions)
    return (torch.sort(x @ d, 0).values - torch.sort(y @ d, 0).values).pow(2).mean().sqrt().item()


def swd_keepdim(x, y, directions):         # shape (1,)
    d = _unit(directions)
    return (torch.sort(x @ d, 0).values - torch.sort(y @ d, 0).values).pow(2).mean().sqrt().reshape(1)


def swd_cpu_accumulator(x, y, directions):  # sums slice by slice into a tensor made on the CPU
    d = _unit(directions)
    total = torch.zeros(1, dtype=x.dtype)
    for p in range(d.shape[1]):
        a, b = torch.sort(x @ d[:, p]).values, torch.sort(y @ d[:, p]).values
        total = total + (a - b).pow(2).mean()
    return (total / d.shape[1]).sqrt()[0]


def euler_float32_state(v, x0, steps):     # the state kept in float32, cast back: float64 only to float32's digits
    x, h = x0.float(), 1.0 / steps
    for k in range(steps):
        x = x + h * v(x, torch.full((x.shape[0],), k * h, device=x.device))
    return x.to(x0.dtype)


def swd_gaps_in_float32(x, y, directions):  # projections in float64, the gaps in float32, cast back
    d = _unit(directions)
    gaps = (torch.sort(x @ d, 0).values - torch.sort(y @ d, 0).values).float()
    return gaps.pow(2).mean().sqrt().to(x.dtype)


def swd_float32(x, y, directions):         # computes in float32
    d = _unit(directions.float())
    return (torch.sort(x.float() @ d, 0).values - torch.sort(y.float() @ d, 0).values).pow(2).mean().sqrt()


WRONG = {
    "flow.fm_pair": [
        (pair_in_place, "changed its input `x0` in place"),
        (pair_unsqueeze_in_place, "changed its input `t` in place"),
        (pair_two_columns, "t[:, None]"),
        (pair_target_from_x_t, "a division by t at t = 0"),
        (pair_cpu_ones, "made on another device"),
        (pair_float32_canvas, "returned dtype torch.float32; expected torch.float64"),
        (pair_float32_inside, "only to float32 precision"),
    ],
    "flow.euler_sample": [
        (euler_one_step_short, "evaluated 3 times"),
        (euler_frozen_velocity, "evaluate v again at every step"),
        (euler_in_place, "changed its input `x0` in place"),
        (euler_fixed_batch, "v was called with t of shape (6,) for 5 points"),
        (euler_cpu_times, "v was called with t on cpu"),
        (euler_float32_canvas, "returned dtype torch.float32; expected torch.float64"),
        (euler_float32_state, "only to float32 precision"),
        (euler_float_time, "v was called with t of type float"),
        (euler_float16_times, "(the start of each step)"),
    ],
    "flow.guided_velocity": [
        (cfg_fills_y, "changed its input `y` in place"),
        (cfg_null_on_cpu, "labels y on cpu"),
        (cfg_null_batch_of_six, "labels y of shape (6,)"),
        (cfg_float32, "returned dtype torch.float32; expected torch.float64"),
        (cfg_ten_as_null, "model.null_class = 3"),
    ],
    "flow.sliced_wasserstein": [
        (swd_normalise_in_place, "changed its input `directions` in place"),
        (swd_item, "got float (did you call .item()"),
        (swd_keepdim, "got shape (1,)"),
        (swd_cpu_accumulator, "another device"),
        (swd_float32, "returned dtype torch.float32; expected torch.float64"),
        (swd_gaps_in_float32, "only to float32 precision"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


# ----------------------------------------------------------------------------- correct, written otherwise

def pair_lerp(x0, x1, t):                  # torch.lerp, a list, t.unsqueeze(-1)
    return [torch.lerp(x0, x1, t.unsqueeze(-1)), -(x0 - x1)]


def pair_from_start(x0, x1, t):            # x0 + t (x1 - x0), t.view(-1, 1)
    v = x1 - x0
    return x0 + t.view(-1, 1) * v, v


def euler_linspace_on_device(v, x0, steps):   # times from linspace(0, 1, steps + 1) on x0's device
    ts = torch.linspace(0, 1, steps + 1, device=x0.device, dtype=x0.dtype)[:-1]
    x = x0.clone()
    for s in ts:
        x += v(x, s.expand(x.shape[0])) / steps
    return x


def euler_while(v, x0, steps):             # a running time, t += h
    x, t, h = x0, 0.0, 1.0 / steps
    for _ in range(steps):
        x = x + h * v(x, x.new_full((x.shape[0],), t))
        t += h
    return x


def cfg_lerp(model, x, t, y, w):           # (1 - w) v_u + w v_c, null labels by full_like
    v_c = model(x, t, y)
    v_u = model(x, t, torch.full_like(y, model.null_class))
    return torch.lerp(v_u, v_c, w)


def cfg_batched(model, x, t, y, w):        # one batched call of 2N rows, as DiT does
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, model.null_class)]))
    v_c, v_u = both.chunk(2)
    return v_c + (w - 1) * (v_c - v_u)


def swd_normalize_and_loop(x, y, directions):   # F.normalize, one direction at a time
    d = F.normalize(directions, dim=0)
    total = x.new_zeros(())
    for p in range(d.shape[1]):
        a, _ = torch.sort(x @ d[:, p])
        b, _ = torch.sort(y @ d[:, p])
        total = total + ((a - b) ** 2).mean()
    return torch.sqrt(total / d.shape[1])


def swd_einsum(x, y, directions):          # einsum and a squared norm
    d = directions / torch.linalg.vector_norm(directions, dim=0)
    px = torch.einsum("nd,dp->np", x, d).sort(dim=0).values
    py = torch.einsum("nd,dp->np", y, d).sort(dim=0).values
    return torch.linalg.vector_norm(px - py) / (px.numel() ** 0.5)


CORRECT_ANSWERS = {
    "flow.fm_pair": [pair_lerp, pair_from_start],
    "flow.euler_sample": [euler_linspace_on_device, euler_while],
    "flow.guided_velocity": [cfg_lerp, cfg_batched],
    "flow.sliced_wasserstein": [swd_normalize_and_loop, swd_einsum],
}


def test_a_wrapper_around_the_library_reference_is_not_the_learners_work():
    from course_lib import flow, metrics
    for name, fn in [("flow.fm_pair", lambda x0, x1, t: flow.fm_pair(x0, x1, t)),
                     ("flow.euler_sample", lambda v, x0, steps: flow.euler_sample(v, x0, steps)),
                     ("flow.guided_velocity", lambda m, x, t, y, w: flow.guided_velocity(m, x, t, y, w)),
                     ("flow.sliced_wasserstein", lambda x, y, d: metrics.sliced_wasserstein(x, y, d))]:
        r = homework.run_check(name, fn)
        assert r.status == "failed" and "reference" in r.message, (name, r)
