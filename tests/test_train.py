import pytest
import torch
from torch import nn

from course_lib.train import EMA, Adversary, train


def regression_problem():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    w = torch.tensor([[1.0, -2.0, 0.5]])
    def loss_fn(step):
        x = torch.randn(64, 3)
        return ((model(x) - x @ w.T) ** 2).mean()
    return model, loss_fn


def test_train_learns_and_records_history():
    model, loss_fn = regression_problem()
    hist = train(model, loss_fn, 300, lr=0.05, progress=False)
    assert len(hist.losses) == 300 and hist.seconds > 0
    assert hist.losses[-1] < 0.01 * hist.losses[0]
    assert len(hist.smoothed(10)) == 300


def test_ema_tracks_weights_and_matches_hand_computation():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update(model)
    assert torch.allclose(ema.model.weight, torch.tensor([[1.1]]))   # 0.9 * 1 + 0.1 * 2


def test_nan_loss_names_the_step():
    model = nn.Linear(1, 1)
    def loss_fn(step):
        out = model(torch.ones(1, 1)).sum()
        return out * float("nan") if step == 3 else out
    with pytest.raises(FloatingPointError, match="step 3"):
        train(model, loss_fn, 10, progress=False)


def test_dict_losses_are_logged_and_bad_returns_are_clear():
    model, loss_fn = regression_problem()
    hist = train(model, lambda s: {"loss": loss_fn(s), "extra": 1.0}, 5, progress=False)
    assert hist.logs["extra"] == [1.0] * 5
    with pytest.raises(TypeError, match="scalar tensor"):
        train(model, lambda s: torch.ones(3, requires_grad=True), 1, progress=False)
    with pytest.raises(ValueError, match="steps must be a non-negative int"):
        train(model, loss_fn, 2.5, progress=False)
    with pytest.raises(ValueError, match="unknown schedule"):
        train(model, loss_fn, 2, schedule="linear", progress=False)


def test_continuing_a_history_appends_and_keeps_ema():
    model, loss_fn = regression_problem()
    hist = train(model, loss_fn, 20, ema_decay=0.99, progress=False)
    ema = hist.ema
    hist = train(model, loss_fn, 10, ema_decay=0.99, progress=False, history=hist)
    assert len(hist.losses) == 30 and hist.ema is ema


def test_cosine_schedule_restores_base_lr():
    model, loss_fn = regression_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train(model, loss_fn, 5, optimizer=opt, schedule="cosine", warmup=2, progress=False)
    assert opt.param_groups[0]["lr"] == 0.1


def test_adversary_steps_after_the_model_from_its_start():
    """The model's step comes first, then the adversary's on what the model's loss_fn left; the
    adversary trains only from ``start`` on, and a bad adversary loss is named."""
    torch.manual_seed(0)
    model, critic = nn.Linear(2, 1), nn.Linear(1, 1)
    order, seen = [], {}

    def loss_fn(step):
        x = torch.randn(8, 2)
        seen["fake"] = model(x).detach()
        order.append(("model", step))
        return model(x).pow(2).mean()

    def critic_loss(step):
        order.append(("critic", step))
        return critic(seen["fake"]).mean()

    w0 = critic.weight.detach().clone()
    adv = Adversary(critic, critic_loss, torch.optim.SGD(critic.parameters(), lr=0.1), start=2)
    hist = train(model, loss_fn, 4, adversary=adv, progress=False)
    assert order == [("model", 0), ("model", 1), ("model", 2), ("critic", 2), ("model", 3), ("critic", 3)]
    assert len(hist.logs["adversary_loss"]) == 2
    assert not torch.equal(critic.weight, w0)
    bad = Adversary(critic, lambda s: torch.ones(2, requires_grad=True), adv.optimizer)
    with pytest.raises(TypeError, match="adversary.loss_fn must return a scalar"):
        train(model, loss_fn, 1, adversary=bad, progress=False)


def test_a_batch_on_another_device_names_loss_fn_and_the_model_device():
    """torch's own "not on the expected device" error inside loss_fn comes back as a ValueError
    that says where the model is; the meta device stands in for a GPU on a CPU-only machine."""
    model = nn.Linear(3, 1).to("meta")
    x = torch.randn(4, 3)                                            # on the CPU
    with pytest.raises(ValueError, match=r"loss_fn\(step=0\): the model is on meta but its batch is not.*cpu"):
        train(model, lambda step: model(x).sum(), 1, progress=False)
    # any other RuntimeError passes through unchanged, even one that mentions a device
    for text in ("something else", "CUDA error: device-side assert triggered"):
        def broken(step):
            raise RuntimeError(text)
        with pytest.raises(RuntimeError, match=text):
            train(nn.Linear(3, 1), broken, 1, progress=False)


def test_progress_in_an_unwatched_run_is_one_line_with_the_final_state(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_STATIC", "1")            # as in `make run` and the notebook tests
    model, loss_fn = regression_problem()
    train(model, loss_fn, 30, lr=0.05, desc="toy")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    lines = [line for line in text.splitlines() if line.startswith("toy")]
    assert len(lines) == 1 and "30/30 steps" in lines[0] and "loss" in lines[0], text
    assert "0%" not in text and "\r" not in text


def test_progress_bar_of_any_loop_ends_in_one_line(monkeypatch, capsys):
    from course_lib import train as T
    monkeypatch.setenv("COURSE_STATIC", "1")
    bar = T.progress_bar(5, "SWD table")
    for _ in range(5):
        bar.update()
    bar.close()
    text = capsys.readouterr()
    assert "SWD table: 5/5 steps" in text.out + text.err


# ----------------------------------------------------------------------------- the model cache

def _cache_here(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    from course_lib import train as T
    return T


def test_a_readable_file_that_does_not_fit_is_kept_beside_the_new_one(tmp_path, monkeypatch):
    T = _cache_here(tmp_path, monkeypatch)
    path = T.cache_path("toy", {"width": 3})
    torch.save(nn.Linear(3, 5).state_dict(), path)                 # another model's weights
    before = path.read_bytes()
    fits = []
    with pytest.warns(RuntimeWarning, match=r"weight of shape \(5, 3\), the model's \(2, 3\).*kept as .*mismatch-1"):
        m = T.cached("toy", {"width": 3}, lambda: nn.Linear(3, 2), lambda m: fits.append(1), verbose=False)
    assert fits == [1] and not m.from_cache
    aside = path.with_name(path.name + ".mismatch-1")
    assert aside.read_bytes() == before                             # the old file survives, byte for byte
    assert torch.load(path, weights_only=True)["weight"].shape == (2, 3)   # the new one beside it
    path.write_bytes(before)                                       # a second mismatch: a second copy
    with pytest.warns(RuntimeWarning, match="mismatch-2"):
        T.cached("toy", {"width": 3}, lambda: nn.Linear(3, 2), lambda m: None, verbose=False)
    assert aside.read_bytes() == path.with_name(path.name + ".mismatch-2").read_bytes() == before


def test_a_readable_file_that_is_not_a_state_dict_is_kept(tmp_path, monkeypatch):
    T = _cache_here(tmp_path, monkeypatch)
    path = T.cache_path("toy", {})
    torch.save(torch.zeros(3), path)
    with pytest.warns(RuntimeWarning, match="hold a Tensor, not a state_dict"):
        T.cached("toy", {}, lambda: nn.Linear(3, 2), lambda m: None, verbose=False)
    assert torch.equal(torch.load(path.with_name(path.name + ".mismatch-1"), weights_only=True), torch.zeros(3))


class _NotAWeight:
    pass


@pytest.mark.parametrize("what", ["random bytes", "text", "truncated zip", "refused pickle", "empty"])
def test_every_unreadable_file_is_named_and_kept(what, tmp_path, monkeypatch):
    T = _cache_here(tmp_path, monkeypatch)
    path = T.cache_path("toy", {})
    if what == "random bytes":
        path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                       dtype=torch.uint8).numpy().tobytes())
    elif what == "text":
        path.write_text("these are not weights\n")
    elif what == "truncated zip":
        torch.save(nn.Linear(3, 2).state_dict(), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif what == "refused pickle":
        torch.save({"weight": _NotAWeight()}, path)                 # weights_only refuses the class
    else:
        path.write_bytes(b"")
    before = path.read_bytes()
    with pytest.warns(RuntimeWarning) as caught:
        m = T.cached("toy", {}, lambda: nn.Linear(3, 2), lambda m: None, verbose=False)
    message = str(caught[0].message)
    assert str(path) in message and "cannot be read as weights" in message and "unreadable-1" in message
    assert path.with_name(path.name + ".unreadable-1").read_bytes() == before
    assert not m.from_cache and set(torch.load(path, weights_only=True)) == {"weight", "bias"}


def test_a_file_that_cannot_be_moved_aside_is_refused_with_its_path(tmp_path, monkeypatch):
    T = _cache_here(tmp_path, monkeypatch)
    path = T.cache_path("toy", {})
    path.write_text("not weights")

    def no_rename(src, dst):
        raise PermissionError("read-only folder")
    from course_lib import cache
    monkeypatch.setattr(cache.os, "rename", no_rename)
    with pytest.raises(RuntimeError, match="cannot move .*toy-.*pt aside"):
        T.cached("toy", {}, lambda: nn.Linear(3, 2), lambda m: None, verbose=False)
    assert path.read_text() == "not weights"


def test_the_cache_key_is_every_field_of_a_budget_dataclass(tmp_path, monkeypatch):
    import dataclasses
    T = _cache_here(tmp_path, monkeypatch)

    @dataclasses.dataclass(frozen=True)
    class Part:
        hidden: int

    @dataclasses.dataclass(frozen=True)
    class Budget:
        mode: str
        steps: int
        part: Part

    a = Budget("quick", 10, Part(4))
    assert T.cache_path("m", a) == T.cache_path("m", Budget("quick", 10, Part(4)))
    assert len({T.cache_path("m", b) for b in (a, Budget("lecture", 10, Part(4)), Budget("quick", 11, Part(4)),
                                              Budget("quick", 10, Part(5)))}) == 4
    with pytest.raises(TypeError, match="config: expected the budget"):
        T.cache_path("m", Budget)                                   # the class, not an instance
