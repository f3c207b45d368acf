"""pytest settings for the whole suite, notebooks included (`make test` runs nbval over lessons/ and solutions/).

nbval waits only 5 seconds (hard-coded in nbval.plugin.IPyNbCell) for a cell's output messages after the
kernel says the cell finished. On a loaded 2-core machine the messages of a cell that drew many progress
bars can take longer than that to arrive, and the cell fails with "Timeout of 5 seconds exceeded waiting for
output" although it ran fine. The cell's own time limit stays `--nbval-cell-timeout` (Makefile).

With pytest-xdist (`make test` runs two workers, `--dist loadfile`) the items of one file stay together on one
worker: a notebook's cells share one kernel, and a test module's fixtures are built once. The two workers share one
data folder (tests/conftest.py sets CAPTIONLIB_DATA before they start): when lessons/NN and solutions/NN run at once,
the second waits for the features and models the first is making, then loads them (captionlib.utils.RunLock).
(`--dist loadgroup` would keep them on one worker, but pytest 9.2 ignores the group suffix xdist 3.8 writes.)
"""
NBVAL_OUTPUT_TIMEOUT = 120   # seconds to wait for a finished cell's outputs


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT
