"""Course tooling: student notebooks generated from the solutions, and re-running every lesson.

    python -m captionlib.course build              # solutions/ -> lessons/ (student copies)
    python -m captionlib.course check              # exit 1 if lessons/ is stale
    python -m captionlib.course run [-p NAME VALUE]... [--out DIR] [NOTEBOOK...]

`solutions/NN_topic.ipynb` is the single source. In a student copy every code between
`### BEGIN SOLUTION` and `### END SOLUTION` becomes `# YOUR CODE HERE` + `raise NotImplementedError()`
(indented like the block), outputs are cleared, and a banner says the file is generated.
"""
from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import nbformat

__all__ = ["student_source", "student_notebook", "build", "stale", "run"]

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BANNER_TAG = "generated-banner"


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
        if cell.cell_type == "code":
            cell.source = student_source(cell.source)
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    banner = nbformat.v4.new_markdown_cell(
        f"> **Generated from `solutions/{source_name}` — do not edit.** Your work goes in the cells marked "
        "`# YOUR CODE HERE`; each check cell after an exercise tells you whether it is right. "
        "Regenerate with `python -m captionlib.course build`.")
    banner.metadata["tags"] = [BANNER_TAG]
    banner.pop("id", None)
    nb.cells = [banner] + cells
    # Only what a student needs; execution-time details (versions, widget state) would cause drift.
    nb.metadata = nbformat.from_dict({"kernelspec": nb.metadata.get("kernelspec", {}), "language_info": {"name": "python"}})
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids, so regenerating gives identical files
    return nb


def _render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def _expected(solutions: Path) -> dict[str, str]:
    out = {}
    for path in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out[path.name] = _render(student_notebook(nb, path.name))
    return out


def build(solutions: Path = REPO / "solutions", lessons: Path = REPO / "lessons") -> list[str]:
    """Write the student copy of every solution notebook; return the names written."""
    lessons.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in _expected(solutions).items():
        target = lessons / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            written.append(name)
    return written


def stale(solutions: Path = REPO / "solutions", lessons: Path = REPO / "lessons") -> list[str]:
    """Names of lessons that are missing, out of date, or have no solution any more."""
    expected = _expected(solutions)
    problems = [n for n, t in expected.items() if not (lessons / n).exists() or (lessons / n).read_text() != t]
    problems += [p.name + " (no solution)" for p in sorted(lessons.glob("*.ipynb")) if p.name not in expected]
    return problems


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as cuda or shapes


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
    sub.add_parser("build", help="generate lessons/ from solutions/")
    sub.add_parser("check", help="fail if lessons/ is stale")
    r = sub.add_parser("run", help="re-run notebooks with papermill")
    r.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in solutions/")
    r.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="a parameter, e.g. -p device cuda")
    r.add_argument("--out", type=Path, default=Path("runs"), help="where executed notebooks go (default: runs/)")
    args = p.parse_args(argv)
    if args.cmd == "build":
        written = build()
        print("\n".join(f"wrote lessons/{n}" for n in written) or "lessons/ already up to date")
        return 0
    if args.cmd == "check":
        problems = stale()
        for n in problems:
            print(f"stale: lessons/{n}; run `python -m captionlib.course build`")
        return 1 if problems else 0
    notebooks = args.notebooks or sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb"))
    params = {k: _value(v) for k, v in args.p}
    rows = run([Path(n).resolve() for n in notebooks], params, args.out)
    print(f"\n{'notebook':<40} {'status':<10} minutes")
    for name, status, minutes in rows:
        print(f"{name:<40} {status:<10} {minutes:7.2f}")
    print(f"{'total':<40} {'':<10} {sum(r[2] for r in rows):7.2f}")
    return 0 if all(r[1] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
