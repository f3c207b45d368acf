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
import itertools
import linecache
import re
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["MISSING", "LAST", "Mistake", "Part", "Result", "same_form", "describe_difference", "shape_story", "explain_exception", "grad_reaches",
           "ungraded_parameters", "tiny_example",
           "check", "checked", "is_reference"]

DONE, NOT_DONE, WRONG = "done", "not done", "wrong"
MARK = {DONE: "✅", NOT_DONE: "⏳", WRONG: "❌"}


@dataclass
class Mistake:
    diagnosis: str                 # what the learner did, said so they can find it
    impl: Callable                 # a function with the exercise's signature that makes it


@dataclass(frozen=True)
class Part:
    """A part of an exercise that earns points on its own (captionlib.grading): a verdict whose diagnosis names
    it (`says`, a regular expression matched against each clause of the diagnosis) loses its points only."""
    name: str
    points: int
    says: str


@dataclass
class Result:
    name: str
    status: str                    # DONE, NOT_DONE or WRONG
    message: str
    diagnosis: str | None = None   # the matched Mistake's diagnosis, when one matched
    form: bool | None = None       # the outputs had the reference's types and shapes on every input (None: no outputs)

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


def same_form(expected, got) -> bool:
    """Whether `got` has `expected`'s form: tensors of the same shape, containers of the same kind and length (item
    by item), numbers where numbers are expected. The values may differ: this is what partial credit calls
    "the output's type and shape" (captionlib.grading)."""
    ea, ga = _as_array(expected), _as_array(got)
    if ea is not None or ga is not None:
        return ea is not None and ga is not None and ea.shape == ga.shape
    if isinstance(expected, dict):
        return isinstance(got, dict) and set(expected) == set(got) and all(same_form(expected[k], got[k]) for k in expected)
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return False
        scalar = lambda v: isinstance(v, (int, float, str)) and not isinstance(v, bool)   # noqa: E731
        if expected and got and all(map(scalar, expected)):      # words or indices: how many is a value, not a form
            return all(scalar(g) and isinstance(g, str) == isinstance(expected[0], str) for g in got)
        return len(expected) == len(got) and all(same_form(e, g) for e, g in zip(expected, got))
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return isinstance(got, (int, float)) and not isinstance(got, bool)
    return type(expected) is type(got)


def _contract(expected, got, where: str) -> str | None:
    """Right values, wrong kind of tensor: a dtype or device that breaks the next step (a float64 batch the CNN rejects)."""
    if isinstance(expected, torch.Tensor) != isinstance(got, torch.Tensor):
        return (f"{where} has the right values but should be a {type(expected).__name__}, got a {type(got).__name__}: "
                + ("convert with torch.from_numpy(...)" if isinstance(expected, torch.Tensor) else "convert with .numpy()"))
    if isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor):
        if got.dtype != expected.dtype:
            if got.dtype == torch.float64 and expected.dtype == torch.float32:
                return (f"{where} has the right values but dtype torch.float64, expected torch.float32: something made "
                        "float64 (numpy's default, as in np.asarray(img) / 255.0, or a .double()). Ask for float32: "
                        "np.asarray(..., dtype=np.float32), or .float() on the tensor")
            return (f"{where} has the right values but dtype {got.dtype}, expected {expected.dtype}: "
                    f"make new tensors with the input's dtype (torch.zeros(..., dtype=x.dtype), or .to(x.dtype))")
        if got.device != expected.device:
            return (f"{where} has the right values but is on {got.device}, expected {expected.device}: "
                    f"make new tensors on the input's device (device=x.device)")
    return None


# ------------------------------------------------------------------ the shape doctor

def _named(shape: tuple, axes: str | None) -> str:
    """(2, 5, 4) with axes "BTH" -> "(B, T, H) = (2, 5, 4)"; without letters just the sizes."""
    sizes = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    if axes and len(axes) == len(shape):
        return "(" + ", ".join(axes) + ("," if len(axes) == 1 else "") + ") = " + sizes
    return sizes


def _letter(axes: str | None, i: int, size: int) -> str:
    return f"{axes[i]} axis" if axes and i < len(axes) else f"axis {i} (size {size})"


def shape_story(expected: tuple, got: tuple, axes: str | None = None) -> str | None:
    """What a wrong shape says about the slip that made it: the relation between `got` and `expected`, named in
    the exercise's letters (`axes`, e.g. "BTH" for expected (B, T, H)). None when no simple relation holds."""
    expected, got = tuple(int(d) for d in expected), tuple(int(d) for d in got)
    want = _named(expected, axes)
    if got == expected:
        return None
    if not got and expected:
        return (f"a single number where {want} is expected: every axis was reduced. Give the reduction the axis it "
                "runs over (e.g. .sum(dim=1), .mean(dim=1))")
    if len(got) == len(expected) + 1:
        for i in range(len(got)):
            if got[i] == 1 and got[:i] + got[i + 1:] == expected:
                return (f"{_named(got, None)} has an extra axis of size 1 at position {i} ({want} expected): a "
                        f"keepdim=True, or an unsqueeze/bmm/matmul result not squeezed back. Remove it: .squeeze({i})")
        for i in range(len(expected)):                       # one axis split in two
            for a in range(2, expected[i]):
                if expected[i] % a == 0 and got == expected[:i] + (a, expected[i] // a) + expected[i + 1:]:
                    return (f"{_named(got, None)}: the {_letter(axes, i, expected[i])} is split in two ({want} expected): "
                            "a view/reshape too many, or the split along the wrong axis")
    if len(got) == len(expected) - 1:
        for i in range(len(expected)):
            if expected[:i] + expected[i + 1:] == got:
                letter = _letter(axes, i, expected[i])
                if expected[i] == 1:
                    return (f"{_named(got, None)}: the {letter} (size 1 here) is gone ({want} expected). squeeze() with no "
                            f"dim removes every axis of size 1, so with a batch of one it drops the batch axis too: name "
                            f"the axis to squeeze, or index it ([:, 0])")
                return (f"{_named(got, None)}: the {letter} is missing ({want} expected): it was reduced or indexed away; "
                        "keep it (reduce over the other axis, or keepdim where you index)")
        for i in range(len(expected) - 1):                   # two neighbours merged into one
            if got == expected[:i] + (expected[i] * expected[i + 1],) + expected[i + 2:]:
                return (f"{_named(got, None)}: the {_letter(axes, i, expected[i])} and the {_letter(axes, i + 1, expected[i + 1])} "
                        f"are merged into one axis of {got[i]} ({want} expected): torch.cat joins along an existing axis, "
                        "torch.stack adds a new one; or a reshape/flatten too many")
    if len(got) == len(expected):
        if sorted(got) == sorted(expected) and len(set(expected)) == len(expected):
            if got == expected[::-1] and len(expected) > 2:
                return (f"{_named(got, None)}: every axis is reversed ({want} expected). .T (or .t()) on a tensor of "
                        f"{len(expected)} axes reverses all of them: use .transpose(i, j) or .permute(...) for the two you mean")
            order = [expected.index(d) for d in got]
            names = [axes[k] if axes and len(axes) == len(expected) else str(expected[k]) for k in order]
            swapped = [i for i in range(len(got)) if order[i] != i]
            if len(swapped) == 2:
                i, j = swapped
                return (f"{_named(got, None)}: the {_letter(axes, j, expected[j])} and the {_letter(axes, i, expected[i])} "
                        f"are swapped, ({', '.join(names)}) where {want} is expected: the stack/cat/reduction ran along the "
                        f"wrong axis, or swap them back with .transpose({i}, {j})")
            return (f"{_named(got, None)}: the axes are in the order ({', '.join(names)}) where {want} is expected: "
                    f".permute({', '.join(map(str, order))}) gives your order; a plain reshape/view never reorders axes")
        differ = [i for i in range(len(got)) if got[i] != expected[i]]
        if len(differ) == 1:
            i = differ[0]
            letter = _letter(axes, i, expected[i])
            if got[i] == 1:
                return (f"{_named(got, None)}: the {letter} has size 1 where it should have {expected[i]} ({want} "
                        "expected): the code works for one item only (written for a single image, or indexed [0:1])")
            if got[i] == expected[i] - 1 or got[i] == expected[i] + 1:
                return (f"{_named(got, None)}: the {letter} has {got[i]} entries, {expected[i]} expected ({want}): "
                        "an off-by-one in a range or a slice")
            if got[i] % expected[i] == 0:
                return (f"{_named(got, None)}: the {letter} is {got[i] // expected[i]} times too long ({want} expected): "
                        "pieces were concatenated (torch.cat) where they should be stacked or combined")
            if got[i] in expected:
                k = expected.index(got[i])
                return (f"{_named(got, None)}: the {letter} has the size of the {_letter(axes, k, expected[k])} ({want} "
                        "expected): the wrong axis was kept or reduced")
        if got and expected and got[0] == 1 and expected[0] > 1:
            return (f"{_named(got, None)}: the first axis has size 1 where {want} is expected: the code handles one item "
                    "of the batch (written for a single image?): keep the batch axis B all the way through")
    if int(np.prod(got or (1,))) == int(np.prod(expected or (1,))) and got != expected:
        return (f"{_named(got, None)} holds as many numbers as {want}, arranged otherwise: a reshape/view where the axes "
                "had to be moved (permute/transpose) or kept")
    return None


# ------------------------------------------------------------------ the exception explainer

_TORCH_SAYS = [
    (re.compile(r"The size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (\d+)"),
     lambda m, L: (f"an element-wise operation (+, -, *, /, torch.where) met sizes {m[1]}{L(m[1])} and {m[2]}{L(m[2])} in "
                   f"dimension {m[3]}, where they must be equal or one of them 1: one operand's axes are not the ones you "
                   "think. Give a vector the axis it lacks (x[:, None]: one value per row), or transpose/reduce to line "
                   "them up")),
    (re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)"),
     lambda m, L: (f"a matrix product of ({m[1]} x {m[2]}{L(m[2])}) by ({m[3]}{L(m[3])} x {m[4]}): the inner sizes must be "
                   f"equal. A weight stored as (out, in) multiplies as x @ W.T; or the operands are the wrong way round")),
    (re.compile(r"not enough values to unpack \(expected (\d+), got (\d+)\)"),
     lambda m, L: (f"unpacking gave {m[2]} values where {m[1]} were expected: the chunk/split (or loop) ran along an axis "
                   f"of {m[2]}{L(m[2])}, not the one holding the {m[1]} parts: give it that axis (dim=...)")),
    (re.compile(r"too many values to unpack \(expected (\d+)"),
     lambda m, L: f"unpacking gave more values than the {m[1]} names on the left: split along the axis that has {m[1]} parts"),
    (re.compile(r"index (-?\d+) is out of bounds for dimension (\d+) with size (\d+)"),
     lambda m, L: (f"index {m[1]} along dimension {m[2]}, which has only {m[3]} entries{L(m[3])}: that axis is shorter "
                   "than the code assumes (an off-by-one, or the wrong axis indexed)")),
    (re.compile(r"selected index k out of range"),
     lambda m, L: ("topk(k) asked for more entries than the axis it runs over has: take the top-k over a tensor with at "
                   "least k entries (e.g. all K*V continuations flattened, not one per row)")),
    (re.compile(r"'NoneType' object (has no attribute|is not subscriptable|is not callable)"),
     lambda m, L: ("a value that is None was used as a tensor: a function without `return`, or None passed where a tensor "
                   "was expected (look at what the line reads)")),
    (re.compile(r"Dimension out of range \(expected to be in range of \[(-?\d+), (-?\d+)\], but got (-?\d+)\)"),
     lambda m, L: (f"dim={m[3]} does not exist: the tensor has only dimensions {m[1]} .. {m[2]}; it has fewer axes than "
                   "the code assumes (squeezed away earlier?)")),
    (re.compile(r"expected scalar type (\w+) but found (\w+)|expected .*dtype"),
     lambda m, L: "two tensors of different dtypes meet: make new tensors with the input's dtype (dtype=x.dtype)"),
]


def _learner_line(e: BaseException, fn: Callable) -> str | None:
    """The line of the learner's own code where `e` was raised (the deepest frame in fn's file)."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return None
    line = None
    for frame, lineno in traceback.walk_tb(e.__traceback__):
        if frame.f_code.co_filename == code.co_filename:
            line = linecache.getline(frame.f_code.co_filename, lineno, frame.f_globals).strip() or line
    return line


def explain_exception(e: BaseException, fn: Callable, letters: dict | None = None) -> str | None:
    """What an exception raised inside the learner's function means: their line, and the clash said in the
    exercise's shape letters. letters: {size: "B"} of the test input that raised it. None when nothing is known."""
    L = lambda size: f" ({'/'.join(sorted(letters[int(size)]))})" if letters and int(size) in letters else ""   # noqa: E731
    said = next((how(m, L) for pattern, how in _TORCH_SAYS if (m := pattern.search(str(e)))), None)
    line = _learner_line(e, fn)
    if said is None and line is None:
        return None
    where = f"in your line `{line}`" if line else ""
    return f"{where}{': ' if where and said else ''}{said or ''}"


def letters_of(args: tuple, arg_axes: dict | None, names: list[str]) -> dict:
    """{size: {letters}} from the arguments' shapes and their documented axes (arg_axes: {name: "BTM"})."""
    out: dict = {}
    for name, a in zip(names, args):
        axes = (arg_axes or {}).get(name)
        shape = getattr(a, "shape", None)
        if axes and shape is not None and len(shape) == len(axes):
            for letter, size in zip(axes, shape):
                out.setdefault(int(size), set()).add(letter)
    return out


# ------------------------------------------------------------------ gradients a training step relies on

def grad_reaches(output, *sources) -> list[bool]:
    """For each source tensor, whether a gradient flows from `output` back to it (a no_grad or detach cuts it)."""
    tensors = [t for t in (output if isinstance(output, (tuple, list)) else [output]) if torch.is_tensor(t)]
    total = sum(t.float().sum() for t in tensors if t.requires_grad and t.is_floating_point())
    if not torch.is_tensor(total) or not total.requires_grad:
        return [False] * len(sources)
    grads = torch.autograd.grad(total, list(sources), allow_unused=True, retain_graph=True)
    return [g is not None and bool(g.abs().sum() > 0) for g in grads]


def ungraded_parameters(module: torch.nn.Module, got, want) -> list[str]:
    """Names of the module's parameters that receive gradient from `want` (the reference's output) but not from
    `got` (the learner's): the parts of the model that training would silently leave untrained."""
    def reached(out) -> set:
        tensors = [t for t in (out if isinstance(out, (tuple, list)) else [out]) if torch.is_tensor(t) and t.requires_grad]
        if not tensors:
            return set()
        names, params = zip(*[(n, p) for n, p in module.named_parameters() if p.requires_grad])
        grads = torch.autograd.grad(sum(t.float().sum() for t in tensors), params, allow_unused=True, retain_graph=True)
        return {n for n, g in zip(names, grads) if g is not None and bool(g.abs().sum() > 0)}
    return sorted(reached(want) - reached(got))


def describe_difference(expected, got, atol: float = 1e-5, rtol: float = 1e-4, where: str = "output",
                        axes=None) -> str | None:
    """None when `got` equals `expected` (tensors to tolerance, containers item by item), else how they differ."""
    ea, ga = _as_array(expected), _as_array(got)
    if ea is not None:
        if ga is None:
            return f"{where} should be a {type(expected).__name__}, got a {type(got).__name__}"
        if ea.shape != ga.shape:
            story = shape_story(ea.shape, ga.shape, axes if isinstance(axes, str) else None)
            return f"{where} {story}" if story else f"{where} has shape {tuple(ga.shape)}, expected {tuple(ea.shape)}"
        if ea.dtype.kind in "fc" or ga.dtype.kind in "fc":
            close = np.isclose(ga.astype(float), ea.astype(float), atol=atol, rtol=rtol, equal_nan=True)
        else:
            close = ga == ea
        if close.all():
            return _contract(expected, got, where)
        first = tuple(int(i) for i in np.argwhere(~close)[0])
        with np.errstate(invalid="ignore"):                          # -inf - -inf: nan, not a difference
            gaps = np.abs(ga.astype(float) - ea.astype(float))[~close]
            diff = np.nanmax(gaps) if not np.isnan(gaps).all() else float("nan")
        return (f"{where} differs in {int((~close).sum())} of {close.size} values (max |difference| {diff:.3g}); "
                f"first at index {first}: expected {ea[first]:.6g}, got {ga[first]:.6g}")
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where} should be a dict, got a {type(got).__name__}"
        if set(expected) != set(got):
            return f"{where} has keys {sorted(map(str, got))}, expected {sorted(map(str, expected))}"
        for k in expected:
            d = describe_difference(expected[k], got[k], atol, rtol, f"{where}[{k!r}]",
                                    axes.get(k) if isinstance(axes, dict) else None)
            if d:
                return d
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"{where} should be a {type(expected).__name__}, got a {type(got).__name__}: {got!r:.80}"
        if len(expected) != len(got):
            return f"{where} has length {len(got)}, expected {len(expected)} (expected {expected!r:.120}, got {got!r:.120})"
        for k, (e, g) in enumerate(zip(expected, got)):
            d = describe_difference(e, g, atol, rtol, f"{where}[{k}]",
                                    axes[k] if isinstance(axes, (tuple, list)) and k < len(axes) else None)
            if d:
                return d
        return None
    if isinstance(expected, (int, float, str)) and not isinstance(expected, bool) and (torch.is_tensor(got) or isinstance(got, np.ndarray)):
        kind = type(expected).__name__
        return (f"{where} should be a Python {kind}, got a {type(got).__name__} (a 0-dim tensor is not a number): "
                f"convert it, {kind}(x) or x.item()")
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
          probes: Sequence[Callable] = (), recipe: dict | None = None, axes=None, arg_axes: dict | None = None,
          effects: Callable | None = None) -> Result:
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
        axes: the output's axes in the shared letters ("BE"; a tuple for a tuple of outputs), so a wrong shape is
            explained by its relation to the right one (the shape doctor, `shape_story`).
        arg_axes: {argument name: its axes' letters}, so an exception raised in the learner's code is explained
            with the letters of the sizes that clash (`explain_exception`).
        effects: for an exercise whose work is a side effect (a training step updates the model it is given):
            effects(f) is a function of the same arguments returning what f did (its result, the weights and
            gradients after it); that is compared. Probes and properties still get the learner's own function.
    """
    seen = effects or (lambda f: f)
    outputs, mutated = [], []
    for k, args in enumerate(cases):
        try:
            raw, changed = _changed(seen(fn), args)
            got = normalize(raw)
            mutated.append(changed)
        except NotImplementedError:
            return Result(name, NOT_DONE, "not done yet: replace `raise NotImplementedError` with your code. "
                                          "The notebook continues with the reference implementation.")
        except Exception as e:  # the learner's bug, reported rather than raised
            explain = next((f for t, f in (errors or {}).items() if isinstance(e, t)), None)
            meaning = explain(e, args) if explain else None
            general = explain_exception(e, fn, letters_of(args, arg_axes, _arg_names(reference, len(args))))
            said = f"raised {type(e).__name__}: {str(e)[:160]} (on test input {k + 1} of {len(cases)})"
            if meaning:
                return Result(name, WRONG, f"{said}: {meaning}", diagnosis=meaning)
            return Result(name, WRONG, f"{said}\n   {general}" if general else said, diagnosis=general)
        outputs.append(got)
    expected, mutated_wrong = [], None
    for k, args in enumerate(cases):
        raw, allowed = _changed(seen(reference), args)
        expected.append(normalize(raw))
        wrong = sorted(mutated[k] - allowed)
        if wrong and mutated_wrong is None:     # the caller's tensors change behind its back: a bug even when the output is right
            names = ", ".join(f"`{_arg_names(reference, len(args))[j]}`" for j in wrong)
            if any(isinstance(args[j], (list, tuple)) and not torch.is_tensor(args[j]) for j in wrong):
                d = (f"your function changes its input {names} in place (a list method such as .pop, .insert, .append, "
                     ".sort or a `del` on it, or on a list inside it): the caller's lists change too. Build new lists "
                     "instead (slices such as r[:k] + r[k + 1:], or list(r))")
            else:
                d = (f"your function changes its input {names} in place (an in-place op such as `+=`, `.add_()` or "
                     f"`x[...] = ...` on it): the caller's data changes too. Work on a new tensor (e.g. `x = x + 1`, `x.clone()`)")
            mutated_wrong = d
    form = all(same_form(e, g) for e, g in zip(expected, outputs))
    result = _verdict(name, cases, expected, outputs, mutated_wrong, mistakes, hints, normalize, atol, rtol, properties,
                      notes, probes, recipe, axes, seen, fn)
    result.form = form
    return result


def _verdict(name, cases, expected, outputs, mutated_wrong, mistakes, hints, normalize, atol, rtol, properties, notes,
             probes, recipe, axes, seen, fn) -> Result:
    """check()'s verdict once both functions have run on every case."""
    if mutated_wrong:
        return Result(name, WRONG, mutated_wrong, diagnosis=mutated_wrong)
    problems = [(k, describe_difference(e, g, atol, rtol, axes=axes)) for k, (e, g) in enumerate(zip(expected, outputs))]
    problems = [(k, p) for k, p in problems if p]
    if not problems:
        for prop in properties:
            try:
                d = prop(fn)
            except Exception:                              # the property's own input broke the learner's code: no verdict
                d = None
            if d:
                return Result(name, WRONG, d, diagnosis=d)
        return Result(name, DONE, "correct on both test inputs" if len(cases) == 2 else f"correct on all {len(cases)} test inputs")
    for m in mistakes:
        try:
            wrong = [normalize(_call(seen(m.impl), args)) for args in cases]
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
    k, _ = problems[0]
    story = _shape_said(expected[k], outputs[k], axes)
    if story:                                             # the shape itself says what happened
        return Result(name, WRONG, f"on test input {k + 1} of {len(cases)}, {story}", diagnosis=story)
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


def _shape_said(expected, got, axes=None, where: str = "output") -> str | None:
    """The shape doctor's story for the first tensor inside `got` whose shape is not the expected one (or None)."""
    ea, ga = _as_array(expected), _as_array(got)
    if ea is not None and ga is not None:
        story = shape_story(ea.shape, ga.shape, axes if isinstance(axes, str) else None) if ea.shape != ga.shape else None
        return f"{where} {story}" if story else None
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)) and len(expected) == len(got):
        for k, (e, g) in enumerate(zip(expected, got)):
            said = _shape_said(e, g, axes[k] if isinstance(axes, (tuple, list)) and k < len(axes) else None, f"{where}[{k}]")
            if said:
                return said
    return None


def _recipe_step(recipe: dict, generic: str) -> str | None:
    """The recipe step for the output named first in `generic` ("output[1] ..." -> recipe[1]), else recipe[None]."""
    m = re.search(r"output\[(\d+)\]", generic)
    key = int(m.group(1)) if m else None
    return recipe.get(key, recipe.get(None))


LEARNER = "_captionlib_learner"   # on a stand-in: the learner's function it stands in for
STAND_IN = "_captionlib_stand_in"  # on a stand-in: True (the course's own way to go on, not the learner's choice)

# The last verdict of each exercise checked in this process: {name: (Result, the learner's function or None, the
# reference)}. captionlib.grading turns it into points.
LAST: dict = {}


MISSING = _MISSING = object()   # a check called with no function looks the exercise up in the notebook


def _callers_function(name: str):
    """The learner's function `name` from the notebook that called the check: the first frame outside captionlib."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__", "").startswith("captionlib"):
        frame = frame.f_back
    return frame.f_globals.get(name, _MISSING) if frame is not None else _MISSING


def _say(result: Result) -> str:
    """The verdict as printed: folded at word boundaries (a notebook's output area would break words apart)."""
    import textwrap

    lines = str(result).splitlines() or [""]
    folded = [textwrap.fill(line, width=110, subsequent_indent="   " if not line.startswith(" ") else "      ",
                            break_long_words=False, break_on_hyphens=False) for line in lines]
    return "\n".join(folded)


def checked(name: str, fn: Callable = _MISSING, reference: Callable | None = None, cases: Sequence[tuple] = (),
            **kwargs) -> Callable:
    """Run `check`, print the verdict, and return the function the notebook should go on with.

    That is the learner's function when it is correct; otherwise a stand-in that runs the reference
    but remembers the learner's function. A check cell rebinds the name (`f = check_f(f)`), so when the
    learner re-runs only the check cell, it receives the stand-in and re-checks the learner's code
    behind it: the verdict stays ⏳ or ❌ until the exercise cell itself is fixed and run.

    With no function given (`f = check_f()`), the function called `name` in the notebook is checked, so a check
    cell runs on its own; when there is none (the kernel was restarted and the cells above were not run), that
    is said, and the notebook goes on with the reference.
    """
    if fn is _MISSING:
        fn = _callers_function(name)
    if fn is _MISSING:
        print(_say(Result(name, NOT_DONE, f"there is no `{name}` in this notebook yet: run the exercise cell above "
                                          "first (after a kernel restart, run the cells from the top: Run > Run All "
                                          "Above Selected Cell). The notebook continues with the reference implementation.")))
        learner = None
        LAST[name] = (Result(name, NOT_DONE, f"there is no `{name}` in this notebook"), None, reference)
    else:
        learner = getattr(fn, LEARNER, fn)
        result = check(name, learner, reference, cases, **kwargs)
        LAST[name] = (result, learner, reference)
        print(_say(result))
        if result.passed:
            return learner
        if result.status == WRONG:
            print("   The notebook continues with the reference implementation. Fix your function, run its cell, "
                  "then this check again.")

    @functools.wraps(reference)
    def stand_in(*args, **kw):
        return reference(*args, **kw)

    setattr(stand_in, STAND_IN, True)
    if learner is not None:
        setattr(stand_in, LEARNER, learner)
    return stand_in


def is_reference(fn: Callable, reference: Callable) -> bool:
    """Whether `fn` is `reference` or a stand-in for it (what `checked` hands back when an exercise is not right yet)."""
    return fn is reference or (hasattr(fn, LEARNER) and getattr(fn, "__wrapped__", None) is reference)
