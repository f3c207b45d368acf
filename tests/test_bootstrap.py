"""The lessons' first cell: in a kernel that cannot import captionlib (Colab, a fresh Python), it installs
the course, from the checkout beside the notebook or, with none (Colab), from a clone of the course's
repository, and the *same* kernel imports captionlib right after, without a restart."""
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from captionlib.course import bootstrap_source

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_kernel(tmp_path, monkeypatch):
    """A kernel named "fresh" whose Python has every dependency but cannot import captionlib, and a pip that
    may fetch nothing; returns that Python."""
    fresh = tmp_path / "fresh"
    subprocess.check_call([sys.executable, "-m", "venv", "--without-pip", str(fresh)])
    python = fresh / "bin" / "python"
    purelib = subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                      text=True).strip()
    # Every dependency (and pip, ipykernel), but not captionlib: this environment's packages as a plain path,
    # so the editable install's own hook (a .pth file there) is not read.
    (Path(purelib) / "course-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run([str(python), "-c", "import importlib.util; print(importlib.util.find_spec('captionlib'))"],
                           cwd=REPO / "lessons", capture_output=True, text=True)
    assert probe.stdout.strip() == "None", probe.stderr
    spec = tmp_path / "jupyter" / "kernels" / "fresh"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                                  "display_name": "fresh", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")     # build with the setuptools already there: no download
    monkeypatch.setenv("PIP_NO_INDEX", "1")               # and nothing else may be fetched either
    return python


def test_the_first_cell_installs_captionlib_and_the_same_kernel_imports_it(fresh_kernel):
    python = fresh_kernel
    lesson = nbformat.read(REPO / "lessons" / "00_setup_and_data.ipynb", as_version=4)
    first = next(c for c in lesson.cells if c.cell_type == "code")
    nb = nbformat.v4.new_notebook(cells=[first, nbformat.v4.new_code_cell(
        "import captionlib.vocab\nprint(captionlib.vocab.tokenize('It works.'), captionlib.__file__)")])
    NotebookClient(nb, kernel_name="fresh", timeout=600, resources={"metadata": {"path": str(REPO / "lessons")}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "['it', 'works']" in out and str(REPO / "captionlib") in out
    installed = subprocess.run([str(python), "-m", "pip", "show", "captionlib"], capture_output=True, text=True)
    assert "Editable project location" in installed.stdout                # and later kernels find it by themselves


def _published(tmp_path: Path) -> Path:
    """The course as its repository would hold it: a git repository of this working tree's files."""
    remote = tmp_path / "remote"
    files = subprocess.check_output(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, text=True).split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (remote / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, remote / name)
    git = ["git", "-c", "user.name=course", "-c", "user.email=course@localhost", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the course"]):
        subprocess.check_call(git + args, cwd=remote)
    return remote


def test_colab_a_lesson_alone_in_an_empty_folder_clones_the_course_and_runs_top_to_bottom(fresh_kernel, tmp_path,
                                                                                          monkeypatch):
    """Colab: the notebook comes from GitHub into /content, with no checkout beside it. Lessons 00 and 01 (the
    CNN, device="auto" as on Colab's CPU runtime) run there top to bottom, the first cloning the course."""
    monkeypatch.setenv("CAPTIONLIB_REPOSITORY", (_published(tmp_path)).as_uri())
    content = tmp_path / "content"
    content.mkdir()
    for name in ("00_setup_and_data.ipynb", "01_cnn_features.ipynb"):
        shutil.copy(REPO / "lessons" / name, content / name)
        nb = nbformat.read(content / name, as_version=4)
        assert next(c for c in nb.cells if c.cell_type == "code").source == bootstrap_source()
        assert 'device = "auto"' in next(c for c in nb.cells if "parameters" in c.metadata.get("tags", [])).source
        nb.cells.append(nbformat.v4.new_code_cell(
            "import os, captionlib\nfrom captionlib.utils import pick_device\n"
            "print(os.getcwd(), captionlib.__file__, pick_device('auto'), sep='|')"))
        NotebookClient(nb, kernel_name="fresh", timeout=900, resources={"metadata": {"path": str(content)}}).execute()
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors == [], errors
        cwd, module, device = "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip().split("|")
        clone = content / "captionlib-course"
        assert Path(module) == clone / "captionlib" / "__init__.py"       # the clone, installed
        assert device == "cpu"
        if name.startswith("00"):
            assert Path(cwd) == clone / "lessons"                         # moved into the clone's lessons/
    assert (clone / ".git").is_dir() and not (content / "captionlib").exists()
