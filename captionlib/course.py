"""Course tooling: student notebooks generated from the solutions, the learner's own copies, re-running lessons.

    python -m captionlib.course build              # solutions/ -> lessons/ (student copies) and graded/ (nbgrader)
    python -m captionlib.course check              # exit 1 if lessons/ or graded/ is stale
    python -m captionlib.course nbgrader [OUT]     # solutions/ -> an nbgrader course folder (default graded/)
    python -m captionlib.course workspace          # lessons/ -> work/, the learner's copies (make lab does it)
    python -m captionlib.course run [-p NAME VALUE]... [--out DIR] [NOTEBOOK...]
        e.g. -p dataset flickr8k -p root ../shared/datasets/flickr8k (a relative root or checkpoint is taken
        from where you type the command, not from the notebook's folder)

`solutions/NN_topic.ipynb` is the single source. In a student copy every code between
`### BEGIN SOLUTION` and `### END SOLUTION` becomes `# YOUR CODE HERE` + `raise NotImplementedError()`
(indented like the block), outputs are cleared, and a banner says the file is generated, with an
"Open in Colab" badge.

The course's repository is named once, in `REPOSITORY`. `build` writes it into every lesson's first
cell (the bootstrap, tagged `bootstrap`, in solutions/ and lessons/ alike), into the badges, and into
the README's lesson table. The bootstrap installs captionlib when the kernel cannot import it: from
the checkout the notebook sits in, or, with no checkout beside it (Colab opened the notebook from
GitHub), from a clone of `REPOSITORY` (`CAPTIONLIB_REPOSITORY` overrides it, e.g. a local clone in a
test), changing into the clone's `lessons/` so that relative paths behave as in JupyterLab.

A learner's work is never overwritten. They work in `work/` (outside git, made by `make lab`), which
`workspace` only ever adds missing lessons to. `build` skips a lesson whose exercise cells hold
code that is not the generated stub, and `check` compares only what the generator owns (the cells'
sources), so opening a lesson in JupyterLab, which rewrites its metadata, is not drift.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

from .grading import stale_course, write_course

__all__ = ["REPOSITORY", "RENAMED", "bootstrap_source", "colab_url", "student_source", "student_notebook", "build", "stale",
           "workspace", "run"]

REPO = Path(__file__).resolve().parents[1]
GRADED = REPO / "graded"                # the nbgrader course folder, generated from solutions/ like lessons/
# The course's public repository and branch: what Colab clones, what the badges open. Stated here only.
REPOSITORY, BRANCH = "https://github.com/captionlib/captionlib", "main"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BANNER_TAG = "generated-banner"
BOOTSTRAP_TAG = "bootstrap"             # the first code cell: installs captionlib where it is missing
EXERCISE_TAG = "exercise"               # a cell that held a solution block: the learner's to fill in
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(name: str, folder: str = "lessons") -> str:
    """Colab's address for a notebook of the course on GitHub, e.g. colab_url("00_setup_and_data.ipynb")."""
    owner_repo = REPOSITORY.removeprefix("https://github.com/").removesuffix(".git")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{BRANCH}/{folder}/{name}"


def bootstrap_source(repository: str | None = None) -> str:
    """The source of every lesson's first code cell (course build writes it; a test runs it as Colab would)."""
    repository = repository or REPOSITORY
    return f'''# Colab, or any Python where captionlib is not installed yet: install the course, and import it in this kernel.
# In a checkout (work/, lessons/ or solutions/ of a git clone) it installs that checkout; with no checkout beside
# this notebook (Colab opened it from GitHub) it clones the course first. Elsewhere: nothing happens.
import importlib, importlib.util, os, subprocess, sys
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch loads: its threads sleep, not spin (captionlib/__init__.py)
if importlib.util.find_spec("captionlib") is None:
    checkout = os.path.abspath("..")
    if not os.path.isfile(os.path.join(checkout, "captionlib", "__init__.py")):
        checkout = os.path.abspath("captionlib-course")
        if not os.path.isdir(checkout):
            url = os.environ.get("CAPTIONLIB_REPOSITORY", "{repository}")
            subprocess.check_call(["git", "clone", "-q", "--depth", "1", url, checkout])
        os.chdir(os.path.join(checkout, "lessons"))     # relative paths and the data cache as in JupyterLab
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-e", checkout])
    sys.path.insert(0, checkout)      # this kernel started before the install: let it import captionlib now
    importlib.invalidate_caches()'''


def _is_bootstrap(cell) -> bool:
    return cell.cell_type == "code" and BOOTSTRAP_TAG in cell.get("metadata", {}).get("tags", [])


def student_source(source: str) -> str:
    """Replace every solution block in a cell's source with a stub at the block's indentation."""
    out, inside, indent = [], False, ""
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


def student_notebook(nb: nbformat.NotebookNode, source_name: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)  # a deep copy
    cells = [c for c in nb.cells if BANNER_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in cells:
        if _is_bootstrap(cell):
            cell.source = bootstrap_source()
        if cell.cell_type == "code":
            stubbed = student_source(cell.source)
            if stubbed != cell.source:
                cell.metadata["tags"] = sorted(set(cell.metadata.get("tags", [])) | {EXERCISE_TAG})
            cell.source = stubbed
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    banner = nbformat.v4.new_markdown_cell(
        f"[![Open In Colab]({COLAB_BADGE})]({colab_url(source_name)})\n\n"
        "> **Your lesson.** Write your code where a cell says `# YOUR CODE HERE`, run it, then run the check cell "
        "after it: ✅ right, ⏳ not done yet, ❌ wrong, with the mistake named. Your work is saved in this notebook. "
        f"(Generated — do not edit to change the course: maintainers edit `solutions/{source_name}`.)")
    banner.metadata["tags"] = [BANNER_TAG]
    banner.pop("id", None)
    nb.cells = [banner] + cells
    # Only what a student needs; execution-time details (versions, widget state) would cause drift.
    nb.metadata = nbformat.from_dict({"kernelspec": nb.metadata.get("kernelspec", {}), "language_info": {"name": "python"}})
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids, so regenerating gives identical files
    nb.metadata["captionlib"] = {"lesson": _fingerprint(nb)}             # which version a learner's copy came from
    return nb


def _owned(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """What the generator owns in a lesson: each cell's type and source, in order (not outputs, metadata, ids)."""
    return [(c.cell_type, c.source) for c in nb.cells]


def _fingerprint(nb: nbformat.NotebookNode) -> str:
    return hashlib.sha1(repr(_owned(nb)).encode()).hexdigest()[:12]


def _render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def _expected(solutions: Path) -> dict[str, nbformat.NotebookNode]:
    return {path.name: student_notebook(nbformat.read(path, as_version=4), path.name)
            for path in sorted(solutions.glob("[0-9][0-9]_*.ipynb"))}


def _exercise_sources(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if EXERCISE_TAG in c.get("metadata", {}).get("tags", [])]


def learner_work(existing: nbformat.NotebookNode, generated: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells of `existing` that hold a learner's work: exercise cells (by tag, or at the place
    of a generated exercise cell) whose code is none of the generated stubs."""
    stubs = set(_exercise_sources(generated))
    places = {i for i, c in enumerate(generated.cells) if EXERCISE_TAG in c.get("metadata", {}).get("tags", [])}
    return [i for i, c in enumerate(existing.cells)
            if (EXERCISE_TAG in c.get("metadata", {}).get("tags", []) or i in places)
            and c.cell_type == "code" and c.source not in stubs]


def _bootstrap_drift(solutions: Path) -> list[str]:
    """Solutions whose bootstrap cell is not `bootstrap_source()` (REPOSITORY changed, or a hand edit)."""
    drift = []
    for path in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if _is_bootstrap(c)]
        if len(cells) > 1 or any(c.source != bootstrap_source() for c in cells):
            drift.append(path.name)
    return drift


def _write_bootstrap(solutions: Path) -> list[str]:
    """Give each solution's bootstrap cell the current source; return the names rewritten."""
    names = _bootstrap_drift(solutions)
    for name in names:
        nb = nbformat.read(solutions / name, as_version=4)
        cells = [c for c in nb.cells if _is_bootstrap(c)]
        if len(cells) != 1:
            raise ValueError(f"solutions/{name}: {len(cells)} cells are tagged {BOOTSTRAP_TAG!r}; tag only the first code cell")
        cells[0].source = bootstrap_source()
        (solutions / name).write_text(_render(nb))
    return names


def readme_badges(text: str) -> str:
    """The README with every lesson's Colab link pointing at REPOSITORY (the lesson table's first column)."""
    return re.sub(r"https://colab\.research\.google\.com/github/[^)\s]*/lessons/([0-9][0-9]_\w+\.ipynb)",
                  lambda m: colab_url(m.group(1)), text)


def build(solutions: Path = REPO / "solutions", lessons: Path = REPO / "lessons", force: bool = False) -> list[str]:
    """Write the student copy of every solution notebook; return the names written.

    The solutions' bootstrap cells and the README's Colab links are brought up to date with REPOSITORY
    first. A lesson whose exercise cells hold code other than the generated stubs (a learner's work) is
    never overwritten unless `force`: it is skipped with a message saying so.
    """
    for name in _write_bootstrap(solutions):
        print(f"updated the bootstrap cell of solutions/{name}", file=sys.stderr)
    readme = solutions.parent / "README.md"
    if readme.exists() and readme_badges(readme.read_text()) != readme.read_text():
        readme.write_text(readme_badges(readme.read_text()))
        print(f"updated the Colab links of {readme}", file=sys.stderr)
    lessons.mkdir(parents=True, exist_ok=True)
    written = []
    for name, nb in _expected(solutions).items():
        target, text = lessons / name, _render(nb)
        if target.exists() and target.read_text() == text:
            continue
        if target.exists() and not force:
            work = learner_work(nbformat.read(target, as_version=4), nb)
            if work:
                print(f"skipped {target}: exercise cell(s) {', '.join(map(str, work))} hold code that is not the "
                      f"generated stub (your work?). Move it to work/{name} (make lab), or delete the file, or build "
                      "with --force to overwrite it.", file=sys.stderr)
                continue
        target.write_text(text)
        written.append(name)
    return written


def stale(solutions: Path = REPO / "solutions", lessons: Path = REPO / "lessons") -> list[str]:
    """Lessons that are missing, out of date (a cell's source differs from the generated one), or have no
    solution any more. Outputs and metadata (JupyterLab rewrites them on opening) do not count."""
    problems = []
    for name, nb in _expected(solutions).items():
        if not (lessons / name).exists():
            problems.append(name)
            continue
        have, want = _owned(nbformat.read(lessons / name, as_version=4)), _owned(nb)
        if have != want:
            cells = [i for i in range(max(len(have), len(want))) if i >= min(len(have), len(want)) or have[i] != want[i]]
            problems.append(f"{name} (cells {', '.join(map(str, cells[:6]))}{', ...' if len(cells) > 6 else ''})")
    problems += [p.name + " (no solution)" for p in sorted(lessons.glob("*.ipynb")) if p.name not in _expected(solutions)]
    problems += [f"{name} (its solution's bootstrap cell is not course.bootstrap_source())" for name in _bootstrap_drift(solutions)]
    return problems


# Lessons that were renumbered: {old file name: new file name}. A learner's copy under the old name is kept as it is,
# the lesson under its new name is added, and `workspace` says so.
RENAMED = {"08_putting_it_together.ipynb": "09_putting_it_together.ipynb"}


def workspace(lessons: Path = REPO / "lessons", work: Path = REPO / "work") -> list[str]:
    """Copy each lesson the learner does not have yet into `work` (their own copies); never overwrite one.

    Returns the names copied. A lesson that changed since the learner's copy was made is reported, not replaced;
    so is a lesson that was renamed (renumbered) since the learner's copy was made.
    """
    work.mkdir(parents=True, exist_ok=True)
    for old, new in RENAMED.items():
        if (work / old).exists() and not (work / new).exists() and (lessons / new).exists():
            print(f"note: lessons/{old} is now lessons/{new} (a lesson was added before it). Your copy work/{old} is "
                  f"kept as it is, with your work; work/{new} is the new version beside it.", file=sys.stderr)
    copied = []
    for path in sorted(lessons.glob("[0-9][0-9]_*.ipynb")):
        mine = work / path.name
        if not mine.exists():
            shutil.copyfile(path, mine)
            copied.append(path.name)
            continue
        try:
            theirs = nbformat.read(mine, as_version=4).metadata.get("captionlib", {}).get("lesson")
        except Exception:   # a copy the learner broke: theirs to mend, never ours to replace
            theirs = None
        current = nbformat.read(path, as_version=4).metadata.get("captionlib", {}).get("lesson")
        if theirs and current and theirs != current:
            print(f"note: lessons/{path.name} has changed since your copy work/{path.name} was made. Your copy is "
                  f"kept; to get the new version, rename yours and run `make lab` again.", file=sys.stderr)
    return copied


PATH_PARAMETERS = ("root", "checkpoint")   # paths: given relative to where `run` is typed, not to the notebook


def _value(name: str, text: str):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare string such as cuda or shapes
    if name in PATH_PARAMETERS and isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        value = str(Path(value).expanduser().resolve())   # notebooks run in their own folder
    return value


def run(notebooks: list[Path], parameters: dict, out: Path, kernel: str = "python3") -> list[tuple]:
    """Execute notebooks with papermill; return (name, status, minutes) rows."""
    import papermill as pm

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for nb in notebooks:
        start = time.time()
        try:
            pm.execute_notebook(str(nb), str(out / nb.name), parameters=parameters, kernel_name=kernel,
                                cwd=str(nb.parent), progress_bar=False)
            status = "ok"
        except Exception as e:  # report every notebook, then fail at the end
            status = f"FAILED: {type(e).__name__}: {str(e).strip().splitlines()[-1][:120] if str(e).strip() else ''}"
        rows.append((nb.name, status, (time.time() - start) / 60))
        print(f"{nb.name:<40} {status:<10} {rows[-1][2]:6.2f} min", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m captionlib.course", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="generate lessons/ and graded/ from solutions/")
    b.add_argument("--force", action="store_true", help="also overwrite lessons whose exercise cells were filled in")
    sub.add_parser("check", help="fail if lessons/ or graded/ is stale")
    g = sub.add_parser("nbgrader", help="write an nbgrader course folder (source/<lesson>/<lesson>.ipynb, nbgrader_config.py)")
    g.add_argument("out", nargs="?", type=Path, default=GRADED, help="the course folder (default: graded/)")
    sub.add_parser("workspace", help="copy the lessons you do not have yet into work/ (your own copies; never overwritten)")
    r = sub.add_parser("run", help="re-run notebooks with papermill")
    r.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in solutions/")
    r.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="a parameter, e.g. -p device cuda")
    r.add_argument("--out", type=Path, default=Path("runs"), help="where executed notebooks go (default: runs/)")
    args = p.parse_args(argv)
    if args.cmd == "build":
        written = build(force=args.force)
        print("\n".join(f"wrote lessons/{n}" for n in written) or "lessons/ already up to date")
        graded = write_course(GRADED)
        print("\n".join(f"wrote graded/{n}" for n in graded) or "graded/ already up to date")
        return 0
    if args.cmd == "check":
        problems = stale()
        for n in problems:
            print(f"stale: lessons/{n}; run `python -m captionlib.course build` (it never overwrites filled-in exercises)")
        for n in stale_course(GRADED):
            print(f"stale: graded/{n}; run `python -m captionlib.course build`")
            problems.append(n)
        return 1 if problems else 0
    if args.cmd == "nbgrader":
        written = write_course(args.out)
        print("\n".join(f"wrote {args.out / n}" for n in written) or f"{args.out}/ already up to date")
        print(f"next: cd {args.out} && nbgrader generate_assignment 02_lstm_equations   (README: Teaching a graded class)")
        return 0
    if args.cmd == "workspace":
        copied = workspace()
        print("\n".join(f"work/{n}: your copy of lessons/{n}" for n in copied) or "work/ has every lesson")
        return 0
    notebooks = args.notebooks or sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb"))
    params = {k: _value(k, v) for k, v in args.p}
    rows = run([Path(n).resolve() for n in notebooks], params, args.out)
    table = timing_table(rows, params)
    (args.out / "timings.md").write_text(table)                        # kept with the executed notebooks (CI artifacts)
    print("\n" + table, end="")
    return 0 if all(r[1] == "ok" for r in rows) else 1


def timing_table(rows: list[tuple], parameters: dict) -> str:
    """A Markdown table of run()'s (name, status, minutes) rows, with the parameters and the device it ran on."""
    import platform

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    given = parameters or "each notebook's own"
    lines = [f"parameters: {given}; {device}; torch {torch.__version__}; "
             f"python {platform.python_version()}", "", "| notebook | status | minutes |", "|---|---|---:|"]
    lines += [f"| {name} | {status} | {minutes:.2f} |" for name, status, minutes in rows]
    lines.append(f"| total | | {sum(r[2] for r in rows):.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
