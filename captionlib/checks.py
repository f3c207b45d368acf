"""Automatic checks for the exercises: done, not done yet, or wrong, with a diagnosis.

Every lesson uses it. A check runs the learner's function and the reference on fixed inputs.
If they disagree it looks for the mistake: each `Mistake` is a deliberately wrong version of the
exercise (gates in the wrong order, softmax over the wrong axis, ...); when the learner's
outputs equal a mistake's outputs on every input, the check names that mistake. Otherwise
`hints` (small functions of the inputs and the learner's output) get a chance, and last a
generic comparison says where the outputs differ (type, shape, first differing value).

An unfinished exercise (NotImplementedError) is reported as such, and `checked` hands back
the reference implementation (a stand-in that remembers the learner's function, so re-running the
check cell re-checks the learner's code), so a student notebook runs top to bottom either way.
"""
from __future__ import annotations

import copy
import functools
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["Mistake", "Result", "describe_difference", "tiny_example", "check", "checked", "is_reference"]

DONE, NOT_DONE, WRONG = "done", "not done", "wrong"
MARK = {DONE: "✅", NOT_DONE: "⏳", WRONG: "❌"}


@dataclass
class Mistake:
    diagnosis: str                 # what the learner did, said so they can find it
    impl: Callable                 # a function with the exercise's signature that makes it


@dataclass
class Result:
    name: str
    status: str                    # DONE, NOT_DONE or WRONG
    message: str
    diagnosis: str | None = None   # the matched Mistake's diagnosis, when one matched

    @property
    def passed(self) -> bool:
        return self.status == DONE

    def __str__(self) -> str:
        return f"{MARK[self.status]} {self.name}: {self.message}"


def _as_array(x) -> np.ndarray | None:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    return None


def _contract(expected, got, where: str) -> str | None:
    """Right values, wrong kind of tensor: a dtype or device that breaks the next step (a float64 batch the CNN rejects)."""
    if isinstance(expected, torch.Tensor) != isinstance(got, torch.Tensor):
        return (f"{where} has the right values but should be a {type(expected).__name__}, got a {type(got).__name__}: "
                + ("convert with torch.from_numpy(...)" if isinstance(expected, torch.Tensor) else "convert with .numpy()"))
    if isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor):
        if got.dtype != expected.dtype:
            return (f"{where} has the right values but dtype {got.dtype}, expected {expected.dtype}: "
                    f"make new tensors with the input's dtype (torch.zeros(..., dtype=x.dtype), or .to(x.dtype))")
        if got.device != expected.device:
            return (f"{where} has the right values but is on {got.device}, expected {expected.device}: "
                    f"make new tensors on the input's device (device=x.device)")
    return None


def describe_difference(expected, got, atol: float = 1e-5, rtol: float = 1e-4, where: str = "output") -> str | None:
    """None when `got` equals `expected` (tensors to tolerance, containers item by item), else how they differ."""
    ea, ga = _as_array(expected), _as_array(got)
    if ea is not None:
        if ga is None:
            return f"{where} should be a {type(expected).__name__}, got a {type(got).__name__}"
        if ea.shape != ga.shape:
            return f"{where} has shape {tuple(ga.shape)}, expected {tuple(ea.shape)}"
        if ea.dtype.kind in "fc" or ga.dtype.kind in "fc":
            close = np.isclose(ga.astype(float), ea.astype(float), atol=atol, rtol=rtol, equal_nan=True)
        else:
            close = ga == ea
        if close.all():
            return _contract(expected, got, where)
        first = tuple(int(i) for i in np.argwhere(~close)[0])
        with np.errstate(invalid="ignore"):                          # -inf - -inf: nan, not a difference
            diff = np.nanmax(np.abs(ga.astype(float) - ea.astype(float))[~close])
        return (f"{where} differs in {int((~close).sum())} of {close.size} values (max |difference| {diff:.3g}); "
                f"first at index {first}: expected {ea[first]:.6g}, got {ga[first]:.6g}")
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where} should be a dict, got a {type(got).__name__}"
        if set(expected) != set(got):
            return f"{where} has keys {sorted(map(str, got))}, expected {sorted(map(str, expected))}"
        for k in expected:
            d = describe_difference(expected[k], got[k], atol, rtol, f"{where}[{k!r}]")
            if d:
                return d
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"{where} should be a {type(expected).__name__}, got a {type(got).__name__}: {got!r:.80}"
        if len(expected) != len(got):
            return f"{where} has length {len(got)}, expected {len(expected)} (expected {expected!r:.120}, got {got!r:.120})"
        for k, (e, g) in enumerate(zip(expected, got)):
            d = describe_difference(e, g, atol, rtol, f"{where}[{k}]")
            if d:
                return d
        return None
    if isinstance(expected, float) and isinstance(got, (int, float)):
        return None if abs(expected - got) <= atol + rtol * abs(expected) else f"{where} is {got!r}, expected {expected!r}"
    return None if expected == got else f"{where} is {got!r:.120}, expected {expected!r:.120}"


def _pairs(expected, got, where: str = "output"):
    """(where, expected array, got array) for every tensor/array inside matching containers, in order."""
    ea, ga = _as_array(expected), _as_array(got)
    if ea is not None and ga is not None:
        yield where, ea, ga
    elif isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        for k, (e, g) in enumerate(zip(expected, got)):
            yield from _pairs(e, g, f"{where}[{k}]")
    elif isinstance(expected, dict) and isinstance(got, dict):
        for k in expected:
            if k in got:
                yield from _pairs(expected[k], got[k], f"{where}[{k!r}]")


def tiny_example(expected, got, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """The at most 2 x 3 block of the first tensor that differs, around its first differing value, expected
    next to got: a picture of the mistake (a transposed block, a shifted row, a constant factor) in six numbers."""
    for where, ea, ga in _pairs(expected, got):
        if ea.shape != ga.shape or ea.size < 2 or ea.dtype.kind not in "fciub":      # a scalar says it all already
            continue
        bad = ~np.isclose(ga.astype(float), ea.astype(float), atol=atol, rtol=rtol, equal_nan=True)
        if not bad.any():
            continue
        first = np.argwhere(bad)[0]
        e2, g2 = ea.reshape(1, -1) if ea.ndim < 2 else ea, ga.reshape(1, -1) if ga.ndim < 2 else ga
        lead = tuple(first[:-2]) if ea.ndim > 2 else ()
        i, j = (0, int(first[0])) if ea.ndim < 2 else (int(first[-2]), int(first[-1]))
        r0, c0 = max(0, min(i, e2.shape[-2] - 2)), max(0, min(j - 1, e2.shape[-1] - 3))
        block = (*lead, slice(r0, r0 + 2), slice(c0, c0 + 3))
        show = lambda a: "[" + " | ".join(" ".join(f"{v:.3g}" for v in row) for row in a[block]) + "]"   # noqa: E731
        at = ", ".join(map(str, (*lead, r0, c0))) if ea.ndim >= 2 else str(c0)
        return f"{where} from index ({at}): expected {show(e2)}, got {show(g2)}"
    return None


def _call(fn: Callable, args: tuple) -> Any:
    return fn(*copy.deepcopy(args))  # fresh inputs, so an in-place edit cannot leak between calls


def _comparable(x) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray)) or (isinstance(x, (list, tuple)) and all(
        isinstance(v, (int, float, str, torch.Tensor, np.ndarray, list, tuple)) for v in x))


def _changed(fn: Callable, args: tuple) -> tuple[Any, set]:
    """fn's output on a copy of args, and the positions of the arguments it changed in place."""
    given = copy.deepcopy(args)
    out = fn(*given)
    return out, {k for k, (a, g) in enumerate(zip(args, given)) if _comparable(a) and describe_difference(a, g, 0, 0)}


def _arg_names(fn: Callable, n: int) -> list[str]:
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    return [names[k] if k < len(names) else f"argument {k + 1}" for k in range(n)]


def check(name: str, fn: Callable, reference: Callable, cases: Sequence[tuple], mistakes: Sequence[Mistake] = (),
          hints: Sequence[Callable] = (), normalize: Callable = lambda x: x, atol: float = 1e-5, rtol: float = 1e-4,
          properties: Sequence[Callable] = (), errors: dict | None = None, notes: Sequence[str | None] = (),
          probes: Sequence[Callable] = (), recipe: dict | None = None) -> Result:
    """Grade `fn` against `reference` on each tuple of arguments in `cases`.

    Args:
        normalize: maps an output to something comparable (e.g. a Vocab to its word list).
        hints: functions (args, learner_output) -> a diagnosis or None, tried when no Mistake matches.
        properties: functions (fn) -> a diagnosis or None, run once the values are right, for what
            equal values cannot show (e.g. a gradient that must not flow).
        errors: {exception type: function (exception, args) -> what it means here}, for exceptions a
            typical mistake raises (e.g. a KeyError for a word the vocabulary does not know).
        probes: functions (fn) -> a diagnosis or None, tried when no Mistake matches: each calls fn on an
            input built so that one part of the computation alone decides the answer, and names that part.
        notes: what each case probes, in the learner's terms (e.g. "pad_idx=3, not 0"), said when it fails.
        recipe: the step of the exercise to re-read when nothing more precise is known, by the output that
            differs: {0: "step 1, ...", 1: "step 3, ..."} for a tuple's items, {None: "..."} for all.
    """
    outputs, mutated = [], []
    for k, args in enumerate(cases):
        try:
            raw, changed = _changed(fn, args)
            got = normalize(raw)
            mutated.append(changed)
        except NotImplementedError:
            return Result(name, NOT_DONE, "not done yet: replace `raise NotImplementedError` with your code. "
                                          "The notebook continues with the reference implementation.")
        except Exception as e:  # the learner's bug, reported rather than raised
            explain = next((f for t, f in (errors or {}).items() if isinstance(e, t)), None)
            said = f"raised {type(e).__name__}: {e} (on test input {k + 1} of {len(cases)})"
            return Result(name, WRONG, f"{said}: {explain(e, args)}" if explain else said,
                          diagnosis=explain(e, args) if explain else None)
        outputs.append(got)
    expected = []
    for k, args in enumerate(cases):
        raw, allowed = _changed(reference, args)
        expected.append(normalize(raw))
        wrong = sorted(mutated[k] - allowed)
        if wrong:     # the caller's tensors change behind its back: a bug even when the output is right
            names = ", ".join(f"`{_arg_names(reference, len(args))[j]}`" for j in wrong)
            d = (f"your function changes its input {names} in place (an in-place op such as `+=`, `.add_()` or "
                 f"`x[...] = ...` on it): the caller's data changes too. Work on a new tensor (e.g. `x = x + 1`, `x.clone()`)")
            return Result(name, WRONG, d, diagnosis=d)
    problems = [(k, describe_difference(e, g, atol, rtol)) for k, (e, g) in enumerate(zip(expected, outputs))]
    problems = [(k, p) for k, p in problems if p]
    if not problems:
        for prop in properties:
            d = prop(fn)
            if d:
                return Result(name, WRONG, d, diagnosis=d)
        return Result(name, DONE, f"correct on all {len(cases)} test inputs")
    for m in mistakes:
        try:
            wrong = [normalize(_call(m.impl, args)) for args in cases]
        except Exception:
            continue
        if all(describe_difference(w, g, atol, rtol) is None for w, g in zip(wrong, outputs)):
            return Result(name, WRONG, m.diagnosis, diagnosis=m.diagnosis)
    for probe in probes:
        try:
            d = probe(fn)
        except Exception:                                  # the probe's input broke the learner's code: no verdict from it
            d = None
        if d:
            return Result(name, WRONG, d, diagnosis=d)
    k, generic = problems[0]
    if len(problems) < len(cases) and k < len(notes) and notes[k]:   # wrong only where a probe looks: say which
        generic = f"right on the other test inputs, wrong {notes[k]}: {generic}"
    for hint in hints:
        h = hint(copy.deepcopy(cases[k]), outputs[k])
        if h:
            return Result(name, WRONG, f"{h} ({generic})", diagnosis=h)
    said = f"on test input {k + 1} of {len(cases)}, {generic}"
    example = tiny_example(expected[k], outputs[k], atol, rtol)
    if example and len(said) + len(example) < 400:
        said += f"; {example}"
    step = _recipe_step(recipe or {}, generic)
    return Result(name, WRONG, said + (f"\n   Re-read {step}" if step else ""))


def _recipe_step(recipe: dict, generic: str) -> str | None:
    """The recipe step for the output named first in `generic` ("output[1] ..." -> recipe[1]), else recipe[None]."""
    m = re.search(r"output\[(\d+)\]", generic)
    key = int(m.group(1)) if m else None
    return recipe.get(key, recipe.get(None))


LEARNER = "_captionlib_learner"   # on a stand-in: the learner's function it stands in for


def checked(name: str, fn: Callable, reference: Callable, cases: Sequence[tuple], **kwargs) -> Callable:
    """Run `check`, print the verdict, and return the function the notebook should go on with.

    That is the learner's function when it is correct; otherwise a stand-in that runs the reference
    but remembers the learner's function. A check cell rebinds the name (`f = check_f(f)`), so when the
    learner re-runs only the check cell, it receives the stand-in and re-checks the learner's code
    behind it: the verdict stays ⏳ or ❌ until the exercise cell itself is fixed and run.
    """
    learner = getattr(fn, LEARNER, fn)
    result = check(name, learner, reference, cases, **kwargs)
    print(result)
    if result.passed:
        return learner
    if result.status == WRONG:
        print("   The notebook continues with the reference implementation. Fix your function, run its cell, "
              "then this check again.")

    @functools.wraps(reference)
    def stand_in(*args, **kw):
        return reference(*args, **kw)

    setattr(stand_in, LEARNER, learner)
    return stand_in


def is_reference(fn: Callable, reference: Callable) -> bool:
    """Whether `fn` is `reference` or a stand-in for it (what `checked` hands back when an exercise is not right yet)."""
    return fn is reference or (hasattr(fn, LEARNER) and getattr(fn, "__wrapped__", None) is reference)
