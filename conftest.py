"""pytest settings for the whole suite, notebooks included (`make test` runs nbval over lessons/ and solutions/).

nbval waits only 5 seconds (hard-coded in nbval.plugin.IPyNbCell) for a cell's output messages after the
kernel says the cell finished. On a loaded 2-core machine the messages of a cell that drew many progress
bars can take longer than that to arrive, and the cell fails with "Timeout of 5 seconds exceeded waiting for
output" although it ran fine. The cell's own time limit stays `--nbval-cell-timeout` (Makefile).
"""
NBVAL_OUTPUT_TIMEOUT = 120   # seconds to wait for a finished cell's outputs


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT
