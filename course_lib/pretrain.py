"""Train the models the notebooks share and write them to ``data/weights/`` (:mod:`course_lib.weights`).

Usage::

    make pretrain                                          # every model, lecture mode
    python -m course_lib.pretrain --mode lecture           # the same
    python -m course_lib.pretrain --mode full token-gpt maskgit
    python -m course_lib.pretrain --list                   # what is there, what each notebook needs
    torchrun --nproc_per_node=4 -m course_lib.pretrain --mode full token-gpt   # several GPUs or processes

Each model is made by the recipe function its notebook calls (:data:`MODELS`): that function asks
:func:`course_lib.cache.cached` for the model, and inside :func:`course_lib.weights.exporting` the
cache trains what ``data/weights/`` does not hold yet (never reading the disk cache: the weights are
this code's) and writes the safetensors file and its manifest entry. A model already there with a
matching manifest entry is checked and kept; one whose budget changed is replaced (said on stdout).
Under torchrun every rank trains (:mod:`course_lib.distributed`) and rank 0 writes.

The models are listed by the recipes themselves (``PRETRAINED`` in each recipe module,
:mod:`course_lib.recipes.registry`); only models a recipe keeps with ``cached(...)`` can be shipped.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from course_lib import distributed, evaluator, runtime, weights
from course_lib.recipes.registry import RECIPES, Pretrained

Model = Pretrained                  # the name this module used before the recipes listed their own


def _evaluator_figures(mode: str) -> dict:
    ref = evaluator.reference(1024)
    return {"held_out_prompt_accuracy": evaluator.prompt_accuracy(ref.images, ref.prompts)}


def collect() -> dict:
    """{name: Pretrained} of the shapes evaluator and every recipe's ``PRETRAINED`` list, in the
    notebooks' order; a name listed twice is an error."""
    found = [Pretrained("shapes-evaluator", ("04", "05", "06", "07", "09", "10"),
                        lambda mode: evaluator.shapes_evaluator(), figures=_evaluator_figures,
                        fp16=False)]            # the judge of every prompted notebook: kept exact
    for module in RECIPES:
        found += list(getattr(importlib.import_module(f"course_lib.recipes.{module}"), "PRETRAINED", ()))
    models = {}
    for m in found:
        if m.name in models:
            raise RuntimeError(f"pretrain: the model {m.name!r} is listed twice (recipes' PRETRAINED)")
        models[m.name] = m
    return models


MODELS = collect()
NOTEBOOKS = ("00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11")


def default_folder() -> Path:
    """Where pretrain writes: :func:`course_lib.weights.folder` if there is one, else ``data/weights`` in
    the course folder (created), else an error asking for ``--out``."""
    found = weights.folder()
    if found is not None:
        return found
    root = weights.course_root()
    if root is None:
        raise SystemExit("pretrain: no course folder here (no solutions/ at or above the current directory): "
                         "run it inside the course, or pass --out DIR")
    return root / "data" / "weights"


def pretrain(names, mode: str, where: Path) -> dict:
    """Make the models ``names`` (all of :data:`MODELS` if empty) in ``mode`` into ``where``; returns
    {name: seconds of this call}. Shipped weights are only read from ``where``."""
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"pretrain: unknown model(s) {', '.join(unknown)}: expected some of {', '.join(MODELS)}")
    runtime.set_mode(mode)
    chosen = [MODELS[n] for n in (names or MODELS)]
    done = {}
    with weights.exporting(where, fp16=[m.name for m in chosen if m.fp16]):
        for m in chosen:
            _, seconds = runtime.timed(lambda: m.make(mode))
            done[m.name] = seconds
            if distributed.is_main() and not any(e.get("name") == m.name and e.get("mode") in (mode, None)
                                                 for e in weights.read_manifest(where).values()):
                raise SystemExit(f"pretrain: {m.name} wrote nothing to {where}: its recipe did not train it "
                                 "through course_lib.cache.cached (or trained it with share=False)")
            if distributed.is_main():
                _halve(m, mode, where)
                _record_figures(m, mode, where)
                print(f"{m.name}: ready in {where} ({seconds:.1f} s)", flush=True)
    return done


def _halve(m: Pretrained, mode: str, where: Path) -> None:
    """A model its recipe stores in float16 (``m.fp16``) whose file in ``where`` is still float32 (made
    before that was decided) is rounded to float16 in place, not retrained."""
    for file, e in weights.read_manifest(where).items():
        if m.fp16 and e.get("name") == m.name and e.get("mode") in (mode, None) and e.get("dtype") != "float16":
            print(f"{m.name}: {file} stored in float16 ({weights.halve(where, file) / 1e6:.2f} MB saved)")


def _record_figures(m: Model, mode: str, where: Path) -> None:
    """Put ``m.figures(mode)`` into the manifest entry of ``m``'s file for ``mode`` (one file only:
    figures of several variants would be ambiguous), unless they are there already."""
    mine = [f for f, e in weights.read_manifest(where).items()
            if e.get("name") == m.name and e.get("mode") in (mode, None) and not e.get("figures")]
    if m.figures is not None and len(mine) == 1:
        weights.set_figures(where, mine[0], m.figures(mode))


def listing(where: Path | None, mode: str) -> str:
    """What ``where`` holds for ``mode`` (and in every mode), and what each notebook needs."""
    files = weights.read_manifest(where) if where is not None else {}
    lines = [f"weights folder: {where or '(none: models train, or come from the disk cache)'}", ""]
    for name in MODELS:
        mine = [(f, e) for f, e in files.items() if e.get("name") == name]
        here = [f"{f} ({e.get('mode') or 'any mode'}, {e.get('dtype')}, {e.get('bytes', 0) / 1e6:.2f} MB, "
                f"{e.get('steps')} steps, {e.get('seconds')} s)"
                + ("" if (where / f).is_file() else " MISSING") for f, e in mine]
        ok = any(e.get("mode") in (mode, None) for _, e in mine)
        lines.append(f"{name}: {'shipped' if ok else 'not shipped'} for {mode} mode"
                     + "".join(f"\n    {h}" for h in here))
    lines += ["", "notebook: the shared models it loads (or trains)"]
    for nb in NOTEBOOKS:
        needs = [m.name for m in MODELS.values() if nb in m.notebooks]
        lines.append(f"  {nb}: {', '.join(needs) if needs else 'none: its models train in its own cells'}")
    total = sum(e.get("bytes", 0) for e in files.values())
    lines.append(f"\n{len(files)} file(s), {total / 1e6:.2f} MB in all")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_lib.pretrain", description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help=f"models to make (default: all): {', '.join(MODELS)}")
    ap.add_argument("--mode", default="lecture", choices=runtime.MODES, help="the budgets to train with")
    ap.add_argument("--list", action="store_true", help="print what exists and what each notebook needs")
    ap.add_argument("--out", type=Path, default=None, help="the weights folder (default: data/weights)")
    args = ap.parse_args(argv)
    if args.list:
        where = args.out or weights.folder()
        print(listing(where if where is not None and where.is_dir() else None, args.mode))
        return 0
    distributed.init()
    try:
        where = args.out or default_folder()
        pretrain(args.names, args.mode, where)
        if distributed.is_main():
            print(listing(where, args.mode))
    finally:
        distributed.close()                             # every rank waits for rank 0's files
    return 0


if __name__ == "__main__":
    sys.exit(main())
