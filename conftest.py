"""pytest settings for the whole suite, notebooks included (`make test` runs nbval over lessons/ and solutions/).

nbval waits only 5 seconds (hard-coded in nbval.plugin.IPyNbCell) for a cell's output messages after the
kernel says the cell finished. On a loaded 2-core machine the messages of a cell that drew many progress
bars can take longer than that to arrive, and the cell fails with "Timeout of 5 seconds exceeded waiting for
output" although it ran fine. The cell's own time limit stays `--nbval-cell-timeout` (Makefile).

With pytest-xdist (`make test` runs two workers, `--dist loadgroup`) the items of one file stay together on one
worker: a notebook's cells share one kernel, and a test module's fixtures are built once. lessons/NN and
solutions/NN join one group, so the student copy runs first and the solution then reuses what it cached (features,
trained models), as a learner's second run would.
"""
import re
from pathlib import Path

import pytest

NBVAL_OUTPUT_TIMEOUT = 120   # seconds to wait for a finished cell's outputs


def _group(path: Path) -> str:
    lesson = re.match(r"(\d\d)_", path.name) if path.parent.name in ("lessons", "solutions") else None
    return f"lesson-{lesson.group(1)}" if lesson else f"{path.parent.name}/{path.name}"


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT
        item.add_marker(pytest.mark.xdist_group(_group(Path(str(item.fspath)))))
