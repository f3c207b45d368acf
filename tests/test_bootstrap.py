"""The lessons' first cell: in a kernel that cannot import captionlib (Colab, a fresh Python), it installs
the course from the checkout, and the *same* kernel imports captionlib right after, without a restart."""
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def test_the_first_cell_installs_captionlib_and_the_same_kernel_imports_it(tmp_path, monkeypatch):
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

    lesson = nbformat.read(REPO / "lessons" / "00_setup_and_data.ipynb", as_version=4)
    first = next(c for c in lesson.cells if c.cell_type == "code")
    nb = nbformat.v4.new_notebook(cells=[first, nbformat.v4.new_code_cell(
        "import captionlib.vocab\nprint(captionlib.vocab.tokenize('It works.'), captionlib.__file__)")])
    NotebookClient(nb, kernel_name="fresh", timeout=600, resources={"metadata": {"path": str(REPO / "lessons")}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "['it', 'works']" in out and str(REPO / "captionlib") in out
    installed = subprocess.run([str(python), "-m", "pip", "show", "captionlib"], capture_output=True, text=True)
    assert "Editable project location" in installed.stdout                # and later kernels find it by themselves
