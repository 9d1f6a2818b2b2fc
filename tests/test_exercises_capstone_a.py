"""Notebook 11's open projects A and B (consistency distillation, discrete flow matching): wrong answers
that are not named mistakes but kinds the checks must catch (no stop-gradient by .requires_grad, an input
changed in place, a device, a dtype, a generator ignored or replaced, a time as a float), and correct
answers written otherwise than the reference. The named mistakes (Exercise.mistakes in
course_lib/course/exercises/capstone_distill.py and capstone_discrete.py) run in
tests/test_exercises_capstone.py; tests/test_homework.py runs WRONG and CORRECT_ANSWERS."""
import torch


# ----------------------------------------------------------------------------- consistency_target

def target_in_place(teacher_velocity, target_model, x_t, t, dt):
    with torch.no_grad():
        x_t += dt[:, None] * teacher_velocity(x_t, t)                # moves the caller's points
        return target_model(x_t, t + dt)


def target_float_time(teacher_velocity, target_model, x_t, t, dt):
    with torch.no_grad():
        x_next = x_t + dt[:, None] * teacher_velocity(x_t, t)
        return target_model(x_next, float((t + dt).mean()))         # one float for the batch


def target_cpu_times(teacher_velocity, target_model, x_t, t, dt):
    with torch.no_grad():
        x_next = x_t + dt[:, None] * teacher_velocity(x_t, t)
        ones = torch.ones(x_t.shape[0], dtype=x_t.dtype)              # made on the CPU
        return target_model(x_next, (t + dt) * ones)


def target_float32(teacher_velocity, target_model, x_t, t, dt):
    with torch.no_grad():
        x_next = x_t.float() + dt.float()[:, None] * teacher_velocity(x_t, t).float()
        return target_model(x_next.to(x_t.dtype), t + dt).float()


def target_requires_grad_afterwards(teacher_velocity, target_model, x_t, t, dt):
    x_next = (x_t + dt[:, None] * teacher_velocity(x_t, t)).detach()    # the step detached, f^- not
    return target_model(x_next, t + dt)


# ----------------------------------------------------------------------------- mask_path_sample

def path_in_place(x1, t, mask_id, kappa, generator=None):
    drop = torch.rand(x1.shape, generator=generator).to(x1.device) >= kappa(t)[:, None]
    x1[drop] = mask_id                                                # writes into the caller's tokens
    return x1


def path_float(x1, t, mask_id, kappa, generator=None):
    keep = (torch.rand(x1.shape, generator=generator).to(x1.device) < kappa(t)[:, None]).float()
    return x1 * keep + mask_id * (1 - keep)                           # float tokens


def path_global_rng(x1, t, mask_id, kappa, generator=None):
    keep = torch.rand(x1.shape, device=x1.device) < kappa(t)[:, None]   # the generator ignored
    return torch.where(keep, x1, torch.full_like(x1, mask_id))


def path_own_seed(x1, t, mask_id, kappa, generator=None):
    g = torch.Generator().manual_seed(0)                              # its own generator, always the same
    keep = torch.rand(x1.shape, generator=g).to(x1.device) < kappa(t)[:, None]
    return torch.where(keep, x1, torch.full_like(x1, mask_id))


def path_keep_mask(x1, t, mask_id, kappa, generator=None):
    return torch.rand(x1.shape, generator=generator).to(x1.device) < kappa(t)[:, None]   # the mask, not x_t


def path_cpu_fill(x1, t, mask_id, kappa, generator=None):
    keep = torch.rand(x1.shape, generator=generator).to(x1.device) < kappa(t)[:, None]
    return torch.where(keep, x1, torch.full(x1.shape, mask_id))      # the fill made on the CPU


WRONG = {
    "capstone.consistency_target": [
        (target_in_place, "in place"),
        (target_float_time, "target_model was called with t of type float"),
        (target_cpu_times, ("made on another device", "target_model was called with t on cpu")),
        (target_float32, ("returned dtype torch.float32", "float32")),
        (target_requires_grad_afterwards, "stop-gradient"),
    ],
    "capstone.mask_path_sample": [
        (path_in_place, "in place"),
        (path_float, "x_t holds token ids, int64"),
        (path_global_rng, "draw the uniforms from the generator passed in"),
        (path_own_seed, "not one of your own"),
        (path_keep_mask, "returned dtype torch.bool"),
        (path_cpu_fill, ("made on another device", "returned a tensor on cpu")),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


def target_by_detach(teacher_velocity, target_model, x_t, t, dt):
    v = teacher_velocity(x_t, t)
    x_next = torch.addcmul(x_t, dt.unsqueeze(-1), v)
    return target_model(x_next, t + dt).detach()


def path_by_bernoulli(x1, t, mask_id, kappa, generator=None):
    p = kappa(t).unsqueeze(1).expand(x1.shape).float().cpu()
    keep = torch.bernoulli(p, generator=generator).bool().to(x1.device)
    return x1.masked_fill(~keep, mask_id)


CORRECT_ANSWERS = {
    "capstone.consistency_target": [target_by_detach],
    "capstone.mask_path_sample": [path_by_bernoulli],
}
