# The two commands of the course:  make lab  (follow the lessons)   make test  (run everything)
# Both create .venv/ and install captionlib into it the first time (and when pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# JupyterLab's settings for the course: no first-run "news" question over the lesson, no update check.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
# The learners' JupyterLab shows the course, not the grading tools the test extra brings (nbgrader's menus and
# server extensions; instructors run nbgrader in a terminal), nor language servers that are not installed.
SERVER_CONFIG := $(VENV)/etc/jupyter/jupyter_server_config.d/zz-captionlib.json
PAGE_CONFIG := $(VENV)/etc/jupyter/labconfig/page_config.json
# Kernels log only errors to the terminal (each one would say it runs "over TCP without encryption", on localhost).
KERNEL_CONFIG := $(VENV)/etc/ipython/ipython_kernel_config.json
# Only what a learner needs in the terminal: warnings, errors, and the address to open.
LAB_QUIET := --ServerApp.log_level=WARN --LabApp.log_level=WARN
# Extra pip arguments, e.g. a CPU-only torch (much smaller download) when you have internet:
#   make lab PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_ARGS ?=
# Extra JupyterLab arguments, e.g. make lab LAB_ARGS="--port 8890 --no-browser --IdentityProvider.token=secret"
LAB_ARGS ?=
# JupyterLab refuses to run as root (the normal case in Docker and many cloud notebooks) unless told to.
ROOT_ARGS := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

.PHONY: install lab test lessons graded bench clean

install: $(STAMP)

$(LAB_SETTINGS): captionlib/assets/jupyterlab-overrides.json $(STAMP)
	@mkdir -p $(dir $@)
	@cp $< $@

$(SERVER_CONFIG): captionlib/assets/jupyter-server-config.json $(STAMP)
	@mkdir -p $(dir $@)
	@cp $< $@

$(PAGE_CONFIG): captionlib/assets/jupyterlab-page-config.json $(STAMP)
	@mkdir -p $(dir $@)
	@cp $< $@

$(KERNEL_CONFIG): captionlib/assets/ipython-kernel-config.json $(STAMP)
	@mkdir -p $(dir $@)
	@cp $< $@

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet $(PIP_ARGS) -e ".[test]"
	@touch $(STAMP)
	@echo "captionlib installed in $(VENV)/"

# Your work lives in work/: your own copies of the lessons, made the first time (new lessons are added
# later, yours are never overwritten); work/ is outside git, so updating the course cannot touch it.
lab: install $(LAB_SETTINGS) $(SERVER_CONFIG) $(PAGE_CONFIG) $(KERNEL_CONFIG)
	$(PY) -m captionlib.course workspace
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/jupyter lab --notebook-dir=work $(LAB_QUIET) $(ROOT_ARGS) $(LAB_ARGS)

# Every notebook in lessons/ and solutions/ under nbval, and the unit tests, in one pytest run on TEST_WORKERS
# processes (pytest-xdist): each notebook and each test file runs whole on one worker (conftest.py).
TEST_WORKERS ?= 2
test: install $(LAB_SETTINGS) $(SERVER_CONFIG) $(PAGE_CONFIG) $(KERNEL_CONFIG)
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest lessons solutions tests --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider \
	    -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lessons: install
	$(PY) -m captionlib.course build

# The course as an nbgrader course folder (README: Teaching a graded class); GRADED=path to write it elsewhere.
GRADED ?= graded
graded: install
	$(PY) -m captionlib.course nbgrader $(GRADED)

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) data/cache runs
