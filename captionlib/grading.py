"""Graded classes: the checks' verdicts as points, and the course as an nbgrader course folder.

    python -m captionlib.course nbgrader graded/      # solutions/ -> graded/source/<lesson>/<lesson>.ipynb

No lesson builds this module: it is the instructors' tooling (README, "Teaching a graded class"). nbgrader
(jupyter/nbgrader, 0.9) grades an autograder test cell by its output: 0 when the cell raised or wrote to stderr,
else the number it ends with (its last expression), out of the cell's `points`. So each graded check cell runs the
lesson's check quietly (`quiet`: warnings and stderr go to stdout) and ends with `score(name)`.

Partial credit. Each exercise has parts with points (`PARTS` in captionlib/exercises/lNN.py), plus one point for
the output's form (the reference's types and shapes, `checks.same_form`). A right answer earns them all. A wrong
one loses the parts its diagnosis names (each clause of the diagnosis is given to the first part whose `says`
matches it); when no clause names a part the check cannot tell which part is wrong, and only the form's point is
kept. An unfinished exercise, a function that raises, and a function that hands the work to captionlib's own
implementation (`hands_off`) earn 0.

Grading runs fast. While nbgrader executes a notebook (NBGRADER_EXECUTION is set), a cell whose first line is
`SKIP_MARK` does not run: the generator marks the cells no check needs (training, plots, demonstrations).
"""
from __future__ import annotations

import contextlib
import dis
import importlib
import inspect
import os
import re
import sys
import types
import warnings
from typing import Callable

from .checks import DONE, LAST, NOT_DONE, STAND_IN, Part

__all__ = ["FORM", "SKIP_MARK", "CHECK_CALL", "parts", "total", "points_of", "score", "hands_off", "quiet",
           "skip_when_grading", "graded_cells", "graded_notebook", "write_course", "stale_course"]

FORM = Part("the output's type and shape", 1, r"dtype|should be a Python|a Python (int|float|list)|in that order|"
                                              r"must be a \(|return one number|return a pair|return the embedded|"
                                              r"return the loss as|not a Tensor|not a list|stack it into")
SKIP_MARK = "# nbgrader skips this cell while grading: no check needs it, so your exercises must not either"
# captionlib objects an exercise may use: what a lesson hands the learner to build with
ALLOWED = {"captionlib.vocab.tokenize", "captionlib.vocab.Vocab", "captionlib.bleu.closest_ref_length"}


def parts(name: str) -> list[Part]:
    """The parts of exercise `name` with their points, the form's first."""
    for lesson in range(10):
        module = importlib.import_module(f"captionlib.exercises.l{lesson:02d}")
        if name in getattr(module, "PARTS", {}):
            return [FORM] + list(module.PARTS[name])
    raise KeyError(f"no exercise {name!r} in captionlib.exercises (its PARTS tables list every graded exercise)")


def total(name: str) -> int:
    return sum(p.points for p in parts(name))


def _clauses(message: str) -> list[str]:
    """The diagnosis' clauses: its first line (later lines quote the learner's line or a recipe), split at '; '."""
    return [c for c in message.splitlines()[0].split("; ") if c.strip()] if message else []


def points_of(name: str, result) -> tuple[float, list[tuple[Part, bool]]]:
    """(points earned, [(part, earned?)]) for a check's Result."""
    every = parts(name)
    if result.status == DONE:
        return float(total(name)), [(p, True) for p in every]
    if result.status == NOT_DONE or result.form is None:            # not written, or it raised: nothing to credit
        return 0.0, [(p, False) for p in every]
    named = set()
    for clause in _clauses(result.message):        # a clause no part claims explains another one, or is unknown
        named |= {next((p for p in every if re.search(p.says, clause)), None)} - {None}
    if not named:                                  # the check cannot say which part is wrong: only the form is credited
        earned = {FORM} if result.form else set()
    else:
        earned = set(every) - named - (set() if result.form else {FORM})
    return float(sum(p.points for p in earned)), [(p, p in earned) for p in every]


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '') or ''}.{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}"


def _codes(fn) -> list[types.CodeType]:
    code = getattr(fn, "__code__", None)
    out, todo = [], [code] if code is not None else []
    while todo:
        c = todo.pop()
        out.append(c)
        todo += [k for k in c.co_consts if isinstance(k, types.CodeType)]
    return out


def hands_off(fn: Callable, reference: Callable) -> str | None:
    """What captionlib object `fn` hands the exercise to, or None when it is the learner's own code.

    Caught: the reference itself (imported), a stand-in the check handed back, a wrapper whose code names the
    reference or imports captionlib, or uses a captionlib function or class other than those a lesson hands the
    learner (`ALLOWED`) and the stand-ins of earlier exercises. Not caught: code copied out of captionlib's source
    by hand, or captionlib reached through a name made at run time; grading says so (README)."""
    if fn is None:
        return None
    if fn is reference or getattr(fn, STAND_IN, False) and getattr(fn, "__wrapped__", None) is reference:
        return _qualname(reference)
    if getattr(fn, "__code__", None) is not None and fn.__code__ is getattr(reference, "__code__", None):
        return _qualname(reference)
    inner = getattr(fn, "func", None)                            # functools.partial
    if inner is not None:
        return hands_off(inner, reference) or (_qualname(inner) if _qualname(inner).startswith("captionlib.") else None)
    if _qualname(fn).startswith("captionlib."):
        return _qualname(fn)
    def borrowed(obj) -> str | None:
        if isinstance(obj, types.ModuleType):
            return obj.__name__ if obj.__name__.startswith("captionlib") else None
        if getattr(obj, STAND_IN, False) or not (inspect.isroutine(obj) or inspect.isclass(obj)):
            return None
        where = _qualname(obj)
        return where if obj is reference or (where.startswith("captionlib.") and where not in ALLOWED) else None

    for cell in getattr(fn, "__closure__", None) or ():          # names of an enclosing function
        try:
            found = borrowed(cell.cell_contents)
        except ValueError:                                      # an empty cell
            found = None
        if found:
            return found
    scope = getattr(fn, "__globals__", {})
    for code in _codes(fn):
        for ins in dis.get_instructions(code):
            if ins.opname == "IMPORT_NAME" and str(ins.argval).startswith("captionlib"):
                return f"import {ins.argval}"
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and ins.argval in scope and borrowed(scope[ins.argval]):
                return borrowed(scope[ins.argval])
        for const in code.co_consts:
            if isinstance(const, str) and re.match(r"captionlib(\.\w+)+$", const):
                return f"import {const}"
    return None


def score(name: str) -> float:
    """The points of exercise `name` from its last check in this kernel (the check cell above), printed part by part;
    nbgrader reads the returned number. A check that never ran scores 0."""
    if name not in LAST:
        print(f"{name}: 0 of {total(name)} points: its check did not run")
        return 0.0
    result, learner, reference = LAST[name]
    earned, table = points_of(name, result)
    borrowed = hands_off(learner, reference) if result.status != NOT_DONE else None
    if borrowed:
        earned, table = 0.0, [(p, False) for p, _ in table]
        print(f"{name}: your function hands the work to captionlib ({borrowed}). The points are for writing it "
              "yourself: 0.")
    print(f"{name}: {earned:g} of {total(name)} points")
    for part, ok in table:
        print(f"   {'✓' if ok else '✗'} {part.name} ({part.points if ok else 0}/{part.points})")
    return earned


@contextlib.contextmanager
def quiet():
    """Warnings and stderr go to stdout for the block: nbgrader scores a test cell that wrote to stderr 0, and a
    progress bar or a library's warning is not a wrong answer."""
    shown = warnings.showwarning

    def to_stdout(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stdout)

    warnings.showwarning = to_stdout
    try:
        with contextlib.redirect_stderr(sys.stdout):
            yield
    finally:
        warnings.showwarning = shown


def _skip(lines: list[str]) -> list[str]:
    return ["pass\n"] if lines and lines[0].rstrip("\n") == SKIP_MARK else lines


def skip_when_grading() -> None:
    """While nbgrader executes the notebook (NBGRADER_EXECUTION is set), cells marked SKIP_MARK do not run."""
    if not os.environ.get("NBGRADER_EXECUTION"):
        return
    ip = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if ip is not None and _skip not in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.append(_skip)


# ---- the nbgrader course folder ------------------------------------------------------------------------------------

CHECK_CALL = re.compile(r"^(\w+) = (l\d\d)\.check_(\w+)\(\)\s*$", re.M)     # a lesson's check cell: `f = l02.check_f()`
SCHEMA = 3


def setup_source(name: str) -> str:
    """The graded notebook's first cell (in place of the lessons' bootstrap, which installs the course: a graded
    class installs it once, in the hub's image)."""
    return f'''# Lesson {name[:2]}, graded with nbgrader. captionlib is installed where this runs (pip install -e <the course>).
import os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch loads: its threads sleep, not spin
try:
    from captionlib.grading import skip_when_grading
except ModuleNotFoundError as e:
    raise ModuleNotFoundError("captionlib is not installed in this Jupyter: ask your instructor, or run "
                              "`pip install -e <the course's folder>` and restart the kernel") from e
skip_when_grading()   # while nbgrader grades, the cells marked "nbgrader skips this cell" do not run'''


def test_source(lesson: str, name: str, bound: str) -> str:
    return (f"from captionlib.exercises import {lesson}      # so that this cell runs on its own (after a kernel restart too)\n"
            "from captionlib.grading import quiet, score\n"
            "with quiet():                                  # nbgrader gives 0 to a test cell that writes to stderr\n"
            f"    {bound} = {lesson}.check_{name}()\n"
            f"score({name!r})                             # your points for {name} (nbgrader reads this number)")


def _meta(grade_id: str, solution: bool = False, grade: bool = False, locked: bool = False, points: int | None = None):
    m = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA, "solution": solution,
         "task": False}
    if points is not None:
        m["points"] = points
    return m


def _names(source: str) -> tuple[set, set]:
    """(names a cell binds at top level, global names it reads, in function bodies too)."""
    import builtins
    import symtable

    from IPython.core.inputtransformer2 import TransformerManager

    table = symtable.symtable(TransformerManager().transform_cell(source), "cell", "exec")
    binds = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    reads = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    todo = list(table.get_children())
    while todo:
        t = todo.pop()
        reads |= {s.get_name() for s in t.get_symbols() if s.is_global() and s.is_referenced()}
        todo += t.get_children()
    return binds, reads - set(dir(builtins))


def _imports(source: str) -> bool:
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    return any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.parse(TransformerManager().transform_cell(source)).body)


def graded_cells(nb) -> dict[int, str]:
    """{code cell index: "setup" | "answer" | "test" | "skip"}: what each code cell of a solution notebook becomes.

    Kept while grading: the bootstrap, the parameters, the exercises and their checks, cells with imports before the
    last check, and every cell defining a name one of those reads (transitively). Skipped: the rest (nothing graded
    reads them; a learner's exercise may still read what the imports cells bind)."""
    kinds = {}
    last = max((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and CHECK_CALL.search(c.source)), default=-1)
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        tags = c.metadata.get("tags", [])
        if "bootstrap" in tags or "parameters" in tags:
            kinds[i] = "setup"
        elif "### BEGIN SOLUTION" in c.source:
            kinds[i] = "answer"
        elif CHECK_CALL.search(c.source):
            kinds[i] = "test"
        else:                                      # after the last check nothing is graded: skipped, imports or not
            kinds[i] = "setup" if i < last and _imports(c.source) else "skip"
    names = {i: _names(nb.cells[i].source) for i in kinds}
    grown = True
    while grown:
        grown = False
        for k in [i for i, kind in kinds.items() if kind != "skip"]:
            for name in names[k][1]:
                before = [i for i in kinds if i < k and name in names[i][0]]
                if before and kinds[before[-1]] == "skip":
                    kinds[before[-1]], grown = "setup", True
    return kinds


def graded_notebook(nb, name: str):
    """The nbgrader source version of a solution notebook (solution regions kept: nbgrader removes them)."""
    import nbformat

    nb = nbformat.from_dict(nb)
    kinds = graded_cells(nb)
    exercise_of = {}
    for i, kind in kinds.items():
        if kind == "test":
            bound, lesson, exercise = CHECK_CALL.search(nb.cells[i].source).groups()
            answer = max((j for j in kinds if j < i and kinds[j] == "answer"), default=None)
            if answer is None or answer in exercise_of:
                raise ValueError(f"solutions/{name}: the check of {exercise} (cell {i}) has no exercise cell of its own above it")
            exercise_of[answer] = exercise
            nb.cells[i].source = test_source(lesson, exercise, bound)
            nb.cells[i].metadata["nbgrader"] = _meta(f"test_{exercise}", grade=True, locked=True, points=total(exercise))
    for i, kind in kinds.items():
        cell = nb.cells[i]
        if kind == "answer":
            if i not in exercise_of:
                raise ValueError(f"solutions/{name}: exercise cell {i} has no check cell after it")
            cell.metadata["nbgrader"] = _meta(f"answer_{exercise_of[i]}", solution=True)
        elif kind == "setup":
            if "bootstrap" in cell.metadata.get("tags", []):
                cell.source = setup_source(name)
            cell.metadata["nbgrader"] = _meta(f"setup_{i}", locked=True)
        elif kind == "skip":
            cell.source = SKIP_MARK + "\n" + cell.source
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "papermill", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        cell["id"] = f"cell-{i}"
    nb.metadata = nbformat.from_dict({"kernelspec": nb.metadata.get("kernelspec", {}), "language_info": {"name": "python"}})
    return nb


CONFIG = '''# nbgrader's configuration for the captionlib course (written by `python -m captionlib.course nbgrader`).
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "captionlib"
c.CourseDirectory.root = __import__("os").path.dirname(__file__) or "."
# A cell may load data or a cached model (the checks run in seconds); nbgrader's default is 30 s per cell.
c.Execute.timeout = 600
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
'''


def write_course(out, solutions=None) -> list[str]:
    """Write the nbgrader course folder `out`: nbgrader_config.py and source/<lesson>/<lesson>.ipynb for every
    lesson with exercises. Returns the files written (relative to out); unchanged files are not rewritten."""
    from pathlib import Path

    import nbformat

    out = Path(out)
    solutions = Path(solutions) if solutions else Path(__file__).resolve().parents[1] / "solutions"
    files = {"nbgrader_config.py": CONFIG}
    for path in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if not any("### BEGIN SOLUTION" in c.source for c in nb.cells if c.cell_type == "code"):
            continue
        files[f"source/{path.stem}/{path.name}"] = nbformat.writes(graded_notebook(nb, path.name)) + "\n"
    written = []
    for rel, text in files.items():
        target = out / rel
        if target.exists() and target.read_text() == text:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(rel)
    return written


def stale_course(out, solutions=None) -> list[str]:
    """Files of the nbgrader folder `out` that differ from what `write_course` would write."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        write_course(tmp, solutions)
        want = {p.relative_to(tmp): p.read_text() for p in Path(tmp).rglob("*") if p.is_file()}
    have = {p.relative_to(out): p.read_text() for p in Path(out).glob("source/*/*.ipynb")} if Path(out).exists() else {}
    if (Path(out) / "nbgrader_config.py").exists():
        have[Path("nbgrader_config.py")] = (Path(out) / "nbgrader_config.py").read_text()
    return sorted(str(p) for p in set(want) | set(have) if want.get(p) != have.get(p))
