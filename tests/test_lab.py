"""`make lab`'s terminal (issue 34): JupyterLab started as the Makefile starts it says only what a learner needs,
the address to open, with no grading tools (nbgrader comes with the test extra) and no language-server noise."""
import json
import os
import re
import urllib.request
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [Path(sys.prefix) / "etc/jupyter/jupyter_server_config.d/zz-captionlib.json",
           Path(sys.prefix) / "etc/jupyter/labconfig/page_config.json",
           Path(sys.prefix) / "etc/ipython/ipython_kernel_config.json"]


def _makefile(name: str) -> str:
    return re.search(rf"^{name} := (.*)$", (REPO / "Makefile").read_text(), re.M).group(1)


def test_the_configs_make_installs_are_the_course_assets():
    if not all(p.exists() for p in CONFIGS):
        pytest.skip("not installed by make (make lab / make test copy them into the virtual environment)")
    import json

    assert CONFIGS[0].read_text() == (REPO / "captionlib/assets/jupyter-server-config.json").read_text()
    assert CONFIGS[2].read_text() == (REPO / "captionlib/assets/ipython-kernel-config.json").read_text()
    assert json.loads(CONFIGS[1].read_text())["disabledExtensions"]["@jupyter/nbgrader"] is True   # JupyterLab adds keys


def test_lab_and_its_kernels_print_only_the_address(tmp_path):
    if not all(p.exists() for p in CONFIGS):
        pytest.skip("not installed by make (make lab / make test copy them into the virtual environment)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", f"--notebook-dir={tmp_path}", "--no-browser",
                                "--allow-root", f"--port={port}", "--ServerApp.ip=127.0.0.1", *_makefile("LAB_QUIET").split()],
                               env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 120
            while "copy and paste one of these URLs" not in log.read_text() and time.time() < deadline:
                time.sleep(0.5)
            token = re.search(r"token=(\w+)", log.read_text()).group(1)
            api = f"http://127.0.0.1:{port}/api/kernels"
            start = urllib.request.Request(f"{api}?token={token}", data=b'{"name": "python3"}', method="POST",
                                           headers={"Content-Type": "application/json"})
            json.load(urllib.request.urlopen(start))
            time.sleep(10)                                    # the kernel starts (nbval runs kernels with this config)
        finally:
            lab.terminate()
            lab.wait(30)
    text = log.read_text()
    before_stop = text.split("received signal")[0]
    assert "copy and paste one of these URLs" in text, text
    assert re.findall(r"^\[[IWE] ", before_stop, re.M) == [], before_stop
    assert "nbgrader" not in before_stop.lower() and "Skipped non-installed" not in before_stop
    assert "IPKernelApp" not in before_stop, before_stop                 # e.g. "Kernel is running over TCP ..."
