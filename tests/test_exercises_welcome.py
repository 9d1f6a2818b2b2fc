"""Wrong answers to notebook 00's exercise; tests/test_homework.py asserts each one is caught."""
import torch


def backwards(v, x, t, dt):          # steps against the field
    return x - dt * v(x, torch.full((x.shape[0],), float(t)))


def forgets_dt(v, x, t, dt):         # a whole unit of time per step
    return x + v(x, torch.full((x.shape[0],), float(t)))


def wrong_time(v, x, t, dt):         # evaluates the field at the end of the step
    return x + dt * v(x, torch.full((x.shape[0],), float(t + dt)))


def returns_velocity(v, x, t, dt):   # the displacement, not the new position
    return dt * v(x, torch.full((x.shape[0],), float(t)))


def in_place_no_move(v, x, t, dt):   # forgets to apply the update
    return x.clone()


WRONG_ANSWERS = {"welcome.euler_step": [backwards, forgets_dt, wrong_time, returns_velocity, in_place_no_move]}
