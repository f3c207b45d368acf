import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from captionlib import course

REPO = Path(__file__).resolve().parents[1]
SOLUTION = '''def f(x):
    """doc"""
    ### BEGIN SOLUTION
    y = x + 1
    return y
    ### END SOLUTION

print(f)'''


def test_solution_blocks_become_stubs_at_their_indentation():
    out = course.student_source(SOLUTION)
    assert "y = x + 1" not in out
    assert '    """doc"""\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(f)' in out
    compile(out, "<student>", "exec")


@pytest.mark.parametrize("bad", ["### BEGIN SOLUTION\nx", "x\n### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN SOLUTION\n"])
def test_unbalanced_markers_are_errors(bad):
    with pytest.raises(ValueError):
        course.student_source(bad)


def _tiny_course(tmp_path):
    sol, les = tmp_path / "solutions", tmp_path / "lessons"
    sol.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SOLUTION)])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="ran")]
    nbformat.write(nb, sol / "00_tiny.ipynb")
    return sol, les


def test_build_then_drift_detection(tmp_path):
    sol, les = _tiny_course(tmp_path)
    assert course.stale(sol, les) == ["00_tiny.ipynb"]                    # missing
    assert course.build(sol, les) == ["00_tiny.ipynb"]
    assert course.stale(sol, les) == [] and course.build(sol, les) == []  # idempotent
    student = nbformat.read(les / "00_tiny.ipynb", as_version=4)
    assert "do not edit" in student.cells[0].source
    assert student.cells[1].outputs == [] and "NotImplementedError" in student.cells[1].source

    nb = nbformat.read(sol / "00_tiny.ipynb", as_version=4)  # edit the solution: the lesson is stale
    nb.cells[0].source = nb.cells[0].source.replace("x + 1", "x + 2")
    nb.cells.append(nbformat.v4.new_markdown_cell("new prose"))
    nbformat.write(nb, sol / "00_tiny.ipynb")
    assert course.stale(sol, les) == ["00_tiny.ipynb (cells 2)"]         # the cell that is new

    course.build(sol, les)  # hand-editing the lesson is drift too
    (les / "00_tiny.ipynb").write_text((les / "00_tiny.ipynb").read_text().replace("new prose", "edited"))
    assert course.stale(sol, les) == ["00_tiny.ipynb (cells 2)"]
    shutil.copy(les / "00_tiny.ipynb", les / "01_orphan.ipynb")
    assert "01_orphan.ipynb (no solution)" in course.stale(sol, les)


def test_opening_a_lesson_in_jupyterlab_is_not_drift(tmp_path):
    """JupyterLab rewrites a notebook's metadata (kernel, language version) and autosaves it; the cells'
    sources are what the generator owns, and they are unchanged."""
    sol, les = _tiny_course(tmp_path)
    course.build(sol, les)
    nb = nbformat.read(les / "00_tiny.ipynb", as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"}
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="ran")]
    nb.cells[1].execution_count = 3
    nbformat.write(nb, les / "00_tiny.ipynb")
    assert course.stale(sol, les) == []


def test_build_never_overwrites_filled_in_exercises(tmp_path, capsys):
    sol, les = _tiny_course(tmp_path)
    course.build(sol, les)
    nb = nbformat.read(les / "00_tiny.ipynb", as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("raise NotImplementedError()", "return x + 1  # mine")
    nbformat.write(nb, les / "00_tiny.ipynb")
    solution = nbformat.read(sol / "00_tiny.ipynb", as_version=4)       # the course changes
    solution.cells.append(nbformat.v4.new_markdown_cell("new prose"))
    nbformat.write(solution, sol / "00_tiny.ipynb")
    assert course.build(sol, les) == []
    assert "skipped" in capsys.readouterr().err and "# mine" in (les / "00_tiny.ipynb").read_text()
    assert course.build(sol, les, force=True) == ["00_tiny.ipynb"] and "# mine" not in (les / "00_tiny.ipynb").read_text()


def test_workspace_copies_what_is_missing_and_never_overwrites(tmp_path, capsys):
    sol, les = _tiny_course(tmp_path)
    course.build(sol, les)
    work = tmp_path / "work"
    assert course.workspace(les, work) == ["00_tiny.ipynb"]
    mine = (work / "00_tiny.ipynb").read_text().replace("raise NotImplementedError()", "return x + 1  # mine")
    (work / "00_tiny.ipynb").write_text(mine)
    assert course.workspace(les, work) == []
    solution = nbformat.read(sol / "00_tiny.ipynb", as_version=4)       # a new version of the lesson
    solution.cells.append(nbformat.v4.new_markdown_cell("new prose"))
    nbformat.write(solution, sol / "00_tiny.ipynb")
    course.build(sol, les)
    assert course.workspace(les, work) == [] and (work / "00_tiny.ipynb").read_text() == mine
    assert "has changed since your copy" in capsys.readouterr().err


def test_a_renumbered_lesson_keeps_the_learners_copy_and_says_so(tmp_path, capsys, monkeypatch):
    sol, les = _tiny_course(tmp_path)
    course.build(sol, les)
    work = tmp_path / "work"
    course.workspace(les, work)
    (work / "00_tiny.ipynb").rename(work / "07_old.ipynb")             # the learner's copy, under the lesson's old name
    (les / "00_tiny.ipynb").rename(les / "08_new.ipynb")
    monkeypatch.setattr(course, "RENAMED", {"07_old.ipynb": "08_new.ipynb"})
    assert course.workspace(les, work) == ["08_new.ipynb"]
    assert (work / "07_old.ipynb").exists()
    assert "lessons/07_old.ipynb is now lessons/08_new.ipynb" in capsys.readouterr().err


def test_every_solution_is_stored_run_top_to_bottom():
    """A solution opened on GitHub or in Colab shows every result: each code cell was executed, in order."""
    for path in sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" and c.source.strip()]
        counts = [c.get("execution_count") for c in cells]
        missing = [k for k, n in enumerate(counts) if n is None]
        assert not missing, f"{path.name}: code cells {missing} were never executed (store it run top to bottom)"
        assert counts == sorted(counts) and len(set(counts)) == len(counts), f"{path.name}: cells executed out of order {counts}"
        assert counts[0] == 1, f"{path.name}: the first code cell is [{counts[0]}]: restart the kernel and run all"


def test_the_repository_lessons_are_up_to_date():
    assert course.stale() == [], "run: python -m captionlib.course build"


def test_every_lesson_starts_with_the_generated_bootstrap_and_a_colab_badge():
    for folder in ("solutions", "lessons"):
        for path in sorted((REPO / folder).glob("[0-9][0-9]_*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            code = [c for c in nb.cells if c.cell_type == "code"]
            assert course.BOOTSTRAP_TAG in code[0].metadata.get("tags", []), path
            assert [c for c in code if course.BOOTSTRAP_TAG in c.metadata.get("tags", [])] == [code[0]], path
            assert code[0].source == course.bootstrap_source(), path
            if folder == "lessons":
                assert f"({course.colab_url(path.name)})" in nb.cells[0].source, path
    assert course.REPOSITORY in course.bootstrap_source()
    readme = (REPO / "README.md").read_text()
    assert course.readme_badges(readme) == readme, "run: python -m captionlib.course build"
    for path in sorted((REPO / "lessons").glob("[0-9][0-9]_*.ipynb")):
        assert f"]({course.colab_url(path.name)})" in readme, path.name


def test_a_new_repository_url_reaches_the_bootstrap_the_badges_and_the_readme(tmp_path, monkeypatch):
    sol, les = _tiny_course(tmp_path)
    nb = nbformat.read(sol / "00_tiny.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("# an old bootstrap", metadata={"tags": [course.BOOTSTRAP_TAG]}))
    nbformat.write(nb, sol / "00_tiny.ipynb")
    (tmp_path / "README.md").write_text("| [x](https://colab.research.google.com/github/old/place/blob/main/lessons/00_tiny.ipynb) |")
    assert any("bootstrap" in p for p in course.stale(sol, les))
    monkeypatch.setattr(course, "REPOSITORY", "https://github.com/someone/fork")
    course.build(sol, les)
    assert course.stale(sol, les) == []
    for folder in (sol, les):
        cells = nbformat.read(folder / "00_tiny.ipynb", as_version=4).cells
        assert "https://github.com/someone/fork" in next(c for c in cells if c.cell_type == "code").source
    assert "github/someone/fork/blob/main/lessons/00_tiny.ipynb" in nbformat.read(les / "00_tiny.ipynb", as_version=4).cells[0].source
    assert "github/someone/fork/blob/main/lessons/00_tiny.ipynb" in (tmp_path / "README.md").read_text()


def test_every_notebook_has_exactly_one_parameters_cell_and_solutions_have_outputs():
    notebooks = sorted((REPO / "solutions").glob("*.ipynb"))
    assert notebooks
    for path in notebooks + sorted((REPO / "lessons").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path
        assert "device" in tagged[0].source and "seed" in tagged[0].source
    for path in notebooks:  # committed with outputs, so they read well on GitHub
        nb = nbformat.read(path, as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), path


def test_course_run_reports_a_table(tmp_path, capsys):
    rows = course.run([REPO / "solutions" / "00_setup_and_data.ipynb"], {"seed": 1}, tmp_path)
    assert rows[0][0] == "00_setup_and_data.ipynb" and rows[0][1] == "ok"
    out = nbformat.read(tmp_path / "00_setup_and_data.ipynb", as_version=4)
    assert any("seed = 1" in c.source for c in out.cells)  # papermill injected the parameter


def test_nbval_waits_for_a_slow_machines_cell_outputs(tmp_path):
    """nbval gives a finished cell 5 s to deliver its outputs; the root conftest.py raises that (a loaded
    CI machine missed it once). Collected as `make test` collects, and read off the items nbval made."""
    (tmp_path / "probe_timeouts.py").write_text(
        "import json, os\n"
        "def pytest_collection_finish(session):\n"
        "    cells = [i for i in session.items if type(i).__name__ == 'IPyNbCell']\n"
        "    open(os.environ['PROBE_OUT'], 'w').write(json.dumps([i.output_timeout for i in cells]))\n")
    out = tmp_path / "timeouts.json"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PROBE_OUT": str(out)}
    subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--collect-only", "-q", "-p", "probe_timeouts",
                    "-p", "no:cacheprovider", "lessons/02_lstm_equations.ipynb"], cwd=REPO, env=env, check=True,
                   capture_output=True)
    timeouts = json.loads(out.read_text())
    assert timeouts and set(timeouts) == {120}, timeouts  # conftest.NBVAL_OUTPUT_TIMEOUT


@pytest.mark.skipif(not (Path(sys.prefix) / "share/jupyter/lab/settings/overrides.json").exists(),
                    reason="the course's JupyterLab settings are installed by `make lab` / `make test`")
def test_jupyterlab_asks_no_news_question(tmp_path):
    """JupyterLab's first-run "news" question covers the lesson and means nothing to a learner: the settings
    the Makefile installs turn it off. Read back from a running JupyterLab, as its front end reads them."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings")}     # no settings of this machine's user
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
                               "--ServerApp.ip=127.0.0.1", "--ServerApp.token=course", f"--notebook-dir={tmp_path}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification?token=course"
        for _ in range(120):
            try:
                settings = json.loads(urllib.request.urlopen(url, timeout=5).read())
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("JupyterLab did not answer within a minute")
    finally:
        server.terminate()
        server.wait(30)
    defaults = {name: spec.get("default") for name, spec in settings["schema"]["properties"].items()}   # overrides applied
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False, defaults
