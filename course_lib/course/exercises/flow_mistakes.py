"""Notebook 08's known mistakes (see :mod:`course_lib.course.exercises.flow`, whose checks name them):
per exercise a tuple of :class:`~course_lib.course.checking.Mistake`, each a wrong implementation with
the exercise's signature and the message that names it, tried in order; the tests submit each one and
assert it is caught with its own message."""

import torch

from course_lib.course.checking import Mistake


# ----------------------------------------------------------------------------- fm_pair

BROADCAST = ("t has shape (N,): give it a trailing axis, t[:, None], so that each row of x0 and x1 is "
             "multiplied by its own time")


def _lerp(a, b, t):
    tt = t[:, None]                                                    # (N, 1)
    return (1 - tt) * a + tt * b


FM_PAIR_MISTAKES = (
    Mistake("swapped_ends", lambda x0, x1, t: (_lerp(x1, x0, t), x1 - x0),
            "in the course's convention t = 0 is the noise and t = 1 the data: x_t = (1 - t) x0 + t x1, with "
            "the target x1 - x0 as you have it"),
    Mistake("reversed_path", lambda x0, x1, t: (_lerp(x1, x0, t), x0 - x1),
            "x_t and the target both run from the data to the noise (the convention t = 0 data): in this course "
            "x_t runs from the noise x0 at t = 0 to the data x1 at t = 1, with target x1 - x0"),
    Mistake("target_sign", lambda x0, x1, t: (_lerp(x0, x1, t), x0 - x1),
            "the target has the wrong sign: the velocity points from the noise to the data, x1 - x0"),
    Mistake("target_is_data", lambda x0, x1, t: (_lerp(x0, x1, t), x1),
            "the target is the velocity x1 - x0, not the data x1"),
    Mistake("target_times_t", lambda x0, x1, t: (_lerp(x0, x1, t), t[:, None] * (x1 - x0)),
            "the target is the constant velocity x1 - x0, not the way travelled so far t (x1 - x0)"),
    Mistake("no_one_minus", lambda x0, x1, t: (x0 + t[:, None] * x1, x1 - x0),
            "x_t = (1 - t) x0 + t x1: the factor (1 - t) on x0 is missing"),
    Mistake("wrong_order", lambda x0, x1, t: (x1 - x0, _lerp(x0, x1, t)),
            "the outputs are in the wrong order: return (x_t, target)"),
    Mistake("t_on_columns", lambda x0, x1, t: ((1 - t) * x0 + t * x1, x1 - x0), BROADCAST),
)


# ----------------------------------------------------------------------------- euler_sample

def _euler(time=lambda k, h: k * h, h_of=lambda steps: 1.0 / steps, moves=True):
    """An Euler sampler evaluating v at time(k, h), moving by h_of(steps) * v (known mistakes' shape)."""
    def sample(v, x0, steps):
        x, h = x0, h_of(steps)
        for k in range(steps):
            x_next = x + h * v(x, torch.full((x.shape[0],), time(k, 1.0 / steps), device=x.device))
            x = x_next if moves else x
        return x
    return sample


def _linspace_times(v, x0, steps):
    ts, x = torch.linspace(0, 1, steps), x0                          # ends at t = 1
    for k in range(steps):
        x = x + v(x, torch.full((x.shape[0],), float(ts[k]), device=x.device)) / (steps - 1)
    return x


EULER_MISTAKES = (
    Mistake("time_at_end", _euler(time=lambda k, h: (k + 1) * h),
            "v was evaluated at the end of each step; Euler evaluates v at its start, t = 0, h, ..., 1 - h"),
    Mistake("backwards", _euler(time=lambda k, h: 1 - k * h),
            "t runs from 1 down to 0; in this course t = 0 is the noise and t = 1 the data"),
    Mistake("linspace", _linspace_times,
            "that is torch.linspace(0, 1, steps): it ends at t = 1, so h = 1/(steps - 1); use h = 1/steps"),
    Mistake("forgets_h", _euler(h_of=lambda steps: 1.0),
            "the points moved `steps` times too far: multiply v by h = 1/steps"),
    Mistake("does_not_move", _euler(moves=False),
            "the points did not move: update them at every step, x = x + h * v(x, t), and return the last x"),
)


# ----------------------------------------------------------------------------- guided_velocity

def _cfg(mix, null=lambda y: None):
    """Guidance that mixes v_c = model(x, t, y) and v_u = model(x, t, null(y)) as mix(v_c, v_u, w)."""
    return lambda model, x, t, y, w: mix(model(x, t, y), model(x, t, null(y)), w)


CFG_MISTAKES = (
    Mistake("swapped", _cfg(lambda c, u, w: c + w * (u - c)),
            "v_c + w (v_u - v_c): v_c and v_u swapped, it guides away from the class"),
    Mistake("one_plus_w", _cfg(lambda c, u, w: (1 + w) * c - w * u),
            "(1 + w) v_c - w v_u: the other convention, in which w = 0 means no guidance; in this course "
            "w = 1 does: v_u + w (v_c - v_u)"),
    Mistake("w_times_conditional", _cfg(lambda c, u, w: w * c), "w v_c: the unconditional velocity is missing"),
    Mistake("sum", _cfg(lambda c, u, w: u + w * c), "v_u + w v_c: subtract v_u inside the bracket, v_u + w (v_c - v_u)"),
    Mistake("class_zero_as_null", _cfg(lambda c, u, w: u + w * (c - u), null=torch.zeros_like),
            "class 0 is a class, not 'no condition': the unconditional velocity is model(x, t, None) (or the "
            "label model.null_class)"),
)


# ----------------------------------------------------------------------------- sliced_wasserstein

def _swd(unit=lambda d: d / d.norm(dim=0, keepdim=True), sort_dim=0, gap=lambda a, b: (a - b).pow(2),
         reduce=lambda g2: g2.mean().sqrt()):
    """A sliced distance with one part swapped for a known mistake's: the normalisation of the
    directions, the axis sorted, the gap per pair, the reduction."""
    def distance(x, y, directions):
        d = unit(directions)
        return reduce(gap((x @ d).sort(sort_dim).values, (y @ d).sort(sort_dim).values))
    return distance


def _expanded_square(x, y, directions):
    d = directions / directions.norm(dim=0, keepdim=True)
    a, b = (x @ d).sort(0).values, (y @ d).sort(0).values
    return (a.pow(2).mean() - 2 * (a * b).mean() + b.pow(2).mean()).clamp_min(0).sqrt()


SWD_MISTAKES = (
    Mistake("no_sort", lambda x, y, d: ((x - y) @ (d / d.norm(dim=0, keepdim=True))).pow(2).mean().sqrt(),
            "the projections were compared point by point: sort each projection over the points first (dim=0)"),
    Mistake("squared", _swd(reduce=lambda g2: g2.mean()),
            "the square of the distance: take the square root of the mean squared gap"),
    Mistake("sorted_across_directions", _swd(sort_dim=1),
            "the projections were sorted across the directions: sort over the points, dim=0"),
    Mistake("not_normalised", _swd(unit=lambda d: d),
            "the directions were used as given: normalise each column to unit length first"),
    Mistake("one_norm", _swd(unit=lambda d: d / d.norm()),
            "the whole matrix of directions was divided by one norm: normalise each column, "
            "directions.norm(dim=0, keepdim=True)"),
    Mistake("rows_normalised", _swd(unit=lambda d: d / d.norm(dim=1, keepdim=True)),
            "the rows of the directions were normalised: each direction is a column, "
            "directions.norm(dim=0, keepdim=True)"),
    Mistake("w1", _swd(gap=lambda a, b: (a - b).abs(), reduce=lambda g: g.mean()),
            "the mean absolute gap (sliced W1): the mean of the squared gaps, then its square root"),
    Mistake("mean_of_roots", _swd(reduce=lambda g2: g2.mean(0).sqrt().mean()),
            "the mean over directions of each direction's distance: take the square root once, of the mean "
            "over points and directions"),
    Mistake("sum", _swd(reduce=lambda g2: g2.sum().sqrt()), "a sum over points and directions: take the mean"),
    Mistake("sum_over_directions", _swd(reduce=lambda g2: g2.mean(0).sum().sqrt()),
            "a sum over the directions: take the mean over them too"),
    Mistake("expanded_square", _expanded_square,
            "expanding (a - b)^2 into a^2 - 2ab + b^2 loses every digit far from the origin: subtract the "
            "sorted projections first, then square the gaps"),
)
