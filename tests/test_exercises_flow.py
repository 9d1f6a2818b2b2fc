"""Wrong answers to notebook 08's exercises; tests/test_homework.py asserts each one is caught."""
import torch

from course_lib.course import homework


# ----------------------------------------------------------------------------- flow.fm_pair

def pair_swapped_ends(x0, x1, t):          # t = 0 is data: the SD3/MeanFlow convention by mistake
    tt = t[:, None]
    return (1 - tt) * x1 + tt * x0, x1 - x0


def pair_wrong_sign(x0, x1, t):            # velocity from data to noise
    tt = t[:, None]
    return (1 - tt) * x0 + tt * x1, x0 - x1


def pair_target_is_data(x0, x1, t):        # regresses the data, not the velocity
    tt = t[:, None]
    return (1 - tt) * x0 + tt * x1, x1


def pair_target_scaled_by_t(x0, x1, t):    # target t (x1 - x0): the displacement so far
    tt = t[:, None]
    return (1 - tt) * x0 + tt * x1, tt * (x1 - x0)


def pair_no_one_minus(x0, x1, t):          # x_t = x0 + t x1: forgot (1 - t)
    tt = t[:, None]
    return x0 + tt * x1, x1 - x0


def pair_both_swapped(x0, x1, t):          # consistent but reversed: x_t from x1 to x0, target x0 - x1
    tt = t[:, None]
    return (1 - tt) * x1 + tt * x0, x0 - x1


# ----------------------------------------------------------------------------- flow.euler_sample

def euler_time_at_end(v, x0, steps):       # evaluates at the end of each step
    x, h = x0, 1.0 / steps
    for k in range(steps):
        x = x + h * v(x, torch.full((x.shape[0],), (k + 1) * h))
    return x


def euler_one_step_short(v, x0, steps):    # off by one: stops at 1 - h
    x, h = x0, 1.0 / steps
    for k in range(steps - 1):
        x = x + h * v(x, torch.full((x.shape[0],), k * h))
    return x


def euler_forgets_h(v, x0, steps):         # a whole unit of time per step
    x, h = x0, 1.0 / steps
    for k in range(steps):
        x = x + v(x, torch.full((x.shape[0],), k * h))
    return x


def euler_backwards_in_time(v, x0, steps):  # runs t from 1 down to 0 (the other convention)
    x, h = x0, 1.0 / steps
    for k in range(steps):
        x = x + h * v(x, torch.full((x.shape[0],), 1.0 - k * h))
    return x


def euler_frozen_velocity(v, x0, steps):   # evaluates v once at x0 and reuses it
    h = 1.0 / steps
    v0 = v(x0, torch.zeros(x0.shape[0]))
    x = x0
    for k in range(steps):
        x = x + h * v0
    return x


# ----------------------------------------------------------------------------- flow.guided_velocity

def cfg_one_plus_w(model, x, t, y, w):     # the (1 + w) c - w u parameterisation with the same w
    v_c, v_u = model(x, t, y), model(x, t, None)
    return (1 + w) * v_c - w * v_u


def cfg_swapped(model, x, t, y, w):        # guides away from the class
    v_c, v_u = model(x, t, y), model(x, t, None)
    return v_c + w * (v_u - v_c)


def cfg_scales_conditional(model, x, t, y, w):   # just w * v_c
    return w * model(x, t, y)


def cfg_sum(model, x, t, y, w):            # u + w c
    return model(x, t, None) + w * model(x, t, y)


# ----------------------------------------------------------------------------- flow.sliced_wasserstein

def swd_no_sort(x, y, directions):         # compares projections point by point
    d = directions / directions.norm(dim=0, keepdim=True)
    return ((x @ d) - (y @ d)).pow(2).mean().sqrt()


def swd_no_sqrt(x, y, directions):         # the squared distance
    d = directions / directions.norm(dim=0, keepdim=True)
    return (torch.sort(x @ d, 0).values - torch.sort(y @ d, 0).values).pow(2).mean()


def swd_not_normalised(x, y, directions):  # forgets to make the directions unit vectors
    return (torch.sort(x @ directions, 0).values - torch.sort(y @ directions, 0).values).pow(2).mean().sqrt()


def swd_sort_wrong_axis(x, y, directions):  # sorts across directions instead of across points
    d = directions / directions.norm(dim=0, keepdim=True)
    return (torch.sort(x @ d, 1).values - torch.sort(y @ d, 1).values).pow(2).mean().sqrt()


def swd_w1(x, y, directions):              # sliced W1 (mean absolute gap)
    d = directions / directions.norm(dim=0, keepdim=True)
    return (torch.sort(x @ d, 0).values - torch.sort(y @ d, 0).values).abs().mean()


def swd_mean_of_roots(x, y, directions):   # mean over directions of W2, not the root of the mean
    d = directions / directions.norm(dim=0, keepdim=True)
    return (torch.sort(x @ d, 0).values - torch.sort(y @ d, 0).values).pow(2).mean(0).sqrt().mean()


WRONG_ANSWERS = {
    "flow.fm_pair": [pair_swapped_ends, pair_wrong_sign, pair_target_is_data, pair_target_scaled_by_t,
                     pair_no_one_minus, pair_both_swapped],
    "flow.euler_sample": [euler_time_at_end, euler_one_step_short, euler_forgets_h, euler_backwards_in_time,
                          euler_frozen_velocity],
    "flow.guided_velocity": [cfg_one_plus_w, cfg_swapped, cfg_scales_conditional, cfg_sum],
    "flow.sliced_wasserstein": [swd_no_sort, swd_no_sqrt, swd_not_normalised, swd_sort_wrong_axis, swd_w1,
                                swd_mean_of_roots],
}


def test_wrong_answers_get_specific_messages():
    msg = homework.run_check("flow.fm_pair", pair_swapped_ends).message
    assert "swapped" in msg, msg
    msg = homework.run_check("flow.fm_pair", pair_wrong_sign).message
    assert "sign" in msg, msg
    msg = homework.run_check("flow.euler_sample", euler_time_at_end).message
    assert "0.25" in msg, msg
    msg = homework.run_check("flow.sliced_wasserstein", swd_no_sort).message
    assert "sort" in msg, msg
