"""The course in a real browser: JupyterLab, driven by headless Chromium, runs lessons 00 and 04 as a learner would.

Run all cells, then: no cell ends in an error, every exercise check cell shows its verdict, and lesson 04's
attention slider renders as a widget (not as text) and moving it changes the picture. Screenshots go to
runs/browser/ (or $CAPTIONLIB_SCREENSHOTS) for a person to look at.

Needs Debian's `chromium` and `chromium-driver` (selenium drives that system browser; nothing downloads a
browser build). Without them the test skips with the reason, except under CI (CI=true), where .ci/run
installs them and a browser that cannot start is a failure.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = Path(os.environ.get("CAPTIONLIB_SCREENSHOTS", REPO / "runs" / "browser"))
VERDICTS = ("✅", "⏳", "❌")

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but chromium/chromedriver are not installed: .ci/run installs them with apt")
    pytest.skip("needs Debian's chromium and chromium-driver (apt install chromium chromium-driver)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fresh(read, tries: int = 20):
    """read(), again while JupyterLab re-renders what it read (a running cell replaces its prompt and outputs,
    so an element found a moment ago can be gone when its text is asked for)."""
    for attempt in range(tries):
        try:
            return read()
        except StaleElementReferenceException:
            if attempt == tries - 1:
                raise
            time.sleep(0.25)


def _wait(what: str, condition, timeout: float, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = _fresh(condition)
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab on a free local port over copies of lessons 00 and 04, and a Chromium looking at it."""
    folder = tmp_path_factory.mktemp("browser")
    notebooks = folder / "lessons"
    notebooks.mkdir()
    for name in ("00_setup_and_data.ipynb", "04_soft_attention.ipynb"):
        shutil.copy(REPO / "lessons" / name, notebooks / name)
    port, token = _free_port(), "course-browser-test"
    # JupyterLab 4 keeps only the cells in view in the page ("windowing"); this user's settings keep them all,
    # so that every cell's prompt and output can be read.
    tracker = folder / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder / "config"), "JUPYTERLAB_SETTINGS_DIR": str(folder / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces")}
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
                               "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", f"--notebook-dir={notebooks}"],
                              env=env, stdout=open(folder / "jupyterlab.log", "w"), stderr=subprocess.STDOUT)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", f"--user-data-dir={folder / 'chromium'}"):
        options.add_argument(flag)
    browser = None
    try:
        _wait("JupyterLab to start", lambda: _answers(f"http://127.0.0.1:{port}/api?token={token}"), 120)
        browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        SHOTS.mkdir(parents=True, exist_ok=True)
        # ?reset: a workspace with only this notebook open (not the tabs of the lesson run before)
        yield browser, f"http://127.0.0.1:{port}/lab/tree/{{}}?reset&token={token}", notebooks
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(30)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
        return True
    except OSError:
        return False


def _menu(browser, menu: str, command: str) -> None:
    """Click a menu of JupyterLab's menu bar, then one of its commands (by JupyterLab's command id)."""
    label = next(e for e in browser.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == menu)
    label.click()
    _wait(f"the {menu} menu", lambda: browser.find_elements(By.CSS_SELECTOR, f'li[data-command="{command}"]'), 10)[0].click()


def _panel(browser):
    """The notebook on show (JupyterLab keeps the other tabs' notebooks in the page, hidden)."""
    shown = [p for p in browser.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel") if p.is_displayed()]
    return shown[0] if shown else None


def _prompts(browser) -> list[str]:
    def read():
        panel = _panel(browser)
        return [e.text for e in panel.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")] if panel else []
    return _fresh(read)


def _run_all(browser, url: str, name: str, timeout: float) -> None:
    """Open a lesson, run all its cells, wait for the last one, and save it (a screenshot if that fails)."""
    try:
        _run_and_save(browser, url, name, timeout)
    except Exception:
        browser.save_screenshot(str(SHOTS / f"{Path(name).stem}-failed.png"))
        raise


def _run_and_save(browser, url: str, name: str, timeout: float) -> None:
    browser.get(url.format(name))
    current = lambda: [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".jp-mod-current .lm-TabBar-tabLabel, "  # noqa: E731
                                                                                 ".lm-mod-current .lm-TabBar-tabLabel")]
    _wait(f"{name} to open", lambda: name in current() and len(_prompts(browser)) > 3, 60)
    assert _fresh(lambda: len([p for p in browser.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel") if p.is_displayed()])) == 1, \
        "more than one notebook on show"
    for _ in range(3):      # the menu acts on the notebook that has the focus: give it the focus, and retry if ignored
        _fresh(lambda: _panel(browser).find_element(By.CSS_SELECTOR, ".jp-Cell").click())
        _fresh(lambda: _menu(browser, "Run", "runmenu:run-all"))
        try:
            _wait(f"{name} to start running", lambda: any(p.strip() not in ("[ ]:", "") for p in _prompts(browser)), 30)
            break
        except AssertionError:
            continue

    def finished():
        prompts = _prompts(browser)
        return prompts and all("*" not in p for p in prompts) and prompts[-1].strip() not in ("[ ]:", "")
    _wait(f"{name} to run to the end", finished, timeout, every=2)
    _fresh(lambda: _menu(browser, "File", "docmanager:save"))
    time.sleep(2)


def _saved(folder: Path, name: str) -> nbformat.NotebookNode:
    return nbformat.read(folder / name, as_version=4)


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _verdicts(browser) -> list[str]:
    """Every exercise verdict line shown in the notebook's output areas, as the learner sees them."""
    def read():
        areas = _panel(browser).find_elements(By.CSS_SELECTOR, ".jp-Cell-outputArea")
        return [line for e in areas for line in e.text.split("\n") if line[:1] in VERDICTS]
    return _fresh(read)


def _checks(nb: nbformat.NotebookNode) -> int:
    """How many exercise checks the lesson calls (`l00.check_build_vocab(...)` and the like)."""
    return sum(len(re.findall(r"\bl\d\d\.check_\w+\(", c.source)) for c in nb.cells if c.cell_type == "code")


def test_lesson_00_runs_in_jupyterlab_and_every_check_shows_its_verdict(lab):
    browser, url, folder = lab
    _run_all(browser, url, "00_setup_and_data.ipynb", timeout=300)
    browser.save_screenshot(str(SHOTS / "00_setup_and_data.png"))
    nb = _saved(folder, "00_setup_and_data.ipynb")
    assert _errors(nb) == []
    verdicts = _verdicts(browser)
    assert len(verdicts) == _checks(nb) > 0, verdicts
    assert all(v.startswith("⏳") for v in verdicts), verdicts                  # the student copy: not done yet


def test_lesson_04_runs_and_its_attention_slider_is_a_widget_that_changes_the_picture(lab):
    browser, url, folder = lab
    _run_all(browser, url, "04_soft_attention.ipynb", timeout=600)
    nb = _saved(folder, "04_soft_attention.ipynb")
    assert _errors(nb) == []
    verdicts = _verdicts(browser)
    assert len(verdicts) == _checks(nb) > 0, verdicts
    sliders = browser.find_elements(By.CSS_SELECTOR, ".widget-interact .widget-slider, .widget-interact .jupyter-widgets.widget-hslider")
    assert sliders, "the attention explorer's slider did not render as a widget (is ipywidgets' front end installed?)"
    box = sliders[0].find_element(By.XPATH, "./ancestor::div[contains(@class, 'widget-interact')]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    picture = lambda: [i.get_attribute("src") for i in box.find_elements(By.TAG_NAME, "img")]  # noqa: E731
    before = _wait("the explorer's picture", picture, 30)
    browser.save_screenshot(str(SHOTS / "04_soft_attention-word0.png"))
    handle = box.find_element(By.CSS_SELECTOR, ".noUi-handle, [role='slider']")
    handle.click()
    for _ in range(2):
        handle.send_keys("\ue014")                                             # arrow right: the next word
    after = _wait("the picture to change", lambda: (p := picture()) and p != before and p, 30)
    browser.save_screenshot(str(SHOTS / "04_soft_attention-word2.png"))
    assert after != before
