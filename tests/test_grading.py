"""Graded classes (issue 31): partial credit from the checks, the hand-off rule, and the nbgrader course folder run
through real nbgrader: generate_assignment for every lesson, validate (and --invert), autograde of simulated
submissions, and the feedback a student gets."""
import contextlib
import csv
import io
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
import torch

from captionlib import checks, grading
from captionlib.course import GRADED, REPO
from captionlib.exercises import l02, l04, l06, l07

sys.path.insert(0, str(Path(__file__).parent))
import blind_new_exercises as blind_new  # noqa: E402
import blind_wrong_solutions as blind  # noqa: E402
import test_catalogue as catalogue  # noqa: E402

EXERCISES = sorted(catalogue.CHECKS)


def _points(exercise, fn):
    check, _ = catalogue.CHECKS[exercise]
    with contextlib.redirect_stdout(io.StringIO()):
        check(fn)
    result = checks.LAST[exercise][0]
    return grading.points_of(exercise, result)


# ---- partial credit --------------------------------------------------------------------------------------------

def test_every_exercise_has_parts_with_points():
    for exercise in EXERCISES:
        parts = grading.parts(exercise)
        assert parts[0] is grading.FORM and len(parts) >= 2, exercise
        assert all(p.points > 0 for p in parts) and grading.total(exercise) == sum(p.points for p in parts)


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_reference_earns_every_point(exercise):
    earned, table = _points(exercise, catalogue.CHECKS[exercise][1])
    assert earned == grading.total(exercise) and all(ok for _, ok in table)


def test_no_wrong_solution_earns_full_marks_and_most_earn_some():
    """Every learner-written wrong solution we have (the catalogue, the held-out and the two blind lists: 349) scores
    below full marks; most keep the points of the parts they got right."""
    items = ([(e, fn) for e, _, fn, _ in catalogue.CATALOGUE] + [(e, fn) for e, fn, _ in catalogue.HELD_OUT]
             + [(e, fn) for e, _, _, fn in blind.BLIND] + [(e, fn) for e, _, _, fn in blind_new.BLIND_NEW])
    some = 0
    for exercise, fn in items:
        earned, _ = _points(exercise, fn)
        assert earned < grading.total(exercise), (exercise, fn)
        some += earned > 0
    assert len(items) >= 340 and some / len(items) > 0.8, (some, len(items))


def _gates_swapped(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    i, f, o, g = gates.chunk(4, dim=1)                           # (i, f, o, g): the gates in the wrong order
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


@pytest.mark.parametrize("exercise, fn, lost", [
    ("lstm_step", _gates_swapped, {"the gates"}),
    ("attend", lambda f, p, h, W, w: catalogue._attention(torch.softmax(catalogue._score(p, h, W, w), 0), f),
     {"the softmax over the P regions"}),
    ("beam_step", catalogue.w.b_swapped, {"the back-pointers"}),
    ("brevity_penalty", lambda c, refs: 1.0 if c > min(refs) else __import__("math").exp(1 - min(refs) / c),
     {"the closest reference length"}),
])
def test_one_named_mistake_loses_only_its_part(exercise, fn, lost):
    earned, table = _points(exercise, fn)
    assert {p.name for p, ok in table if not ok} == lost
    assert earned == grading.total(exercise) - sum(p.points for p, _ in table if p.name in lost)


def test_a_diagnosis_no_part_claims_keeps_only_the_form():
    result = checks.Result("lstm_step", checks.WRONG, "on test input 1 of 2, output[0] differs in 8 of 8 values", form=True)
    assert grading.points_of("lstm_step", result)[0] == grading.FORM.points
    result.form = False
    assert grading.points_of("lstm_step", result)[0] == 0


def test_score_prints_the_parts_and_returns_a_plain_number(capsys):
    with contextlib.redirect_stdout(io.StringIO()):
        l02.check_lstm_step(_gates_swapped)
    got = grading.score("lstm_step")
    out = capsys.readouterr().out
    assert type(got) is float and got == 3.0                     # nbgrader reads the text/plain of a float
    assert "lstm_step: 3 of 5 points" in out and "✗ the gates (0/2)" in out and "✓ the cell update c (1/1)" in out


# ---- handing the work to captionlib ------------------------------------------------------------------------------

def test_hands_off_catches_the_reference_and_wrappers_of_it():
    from captionlib.lstm import lstm_step

    def wrapper(*args):
        return lstm_step(*args)

    def importer(*args):
        from captionlib import lstm
        return lstm.lstm_step(*args)

    def own(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
        return _gates_swapped(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)

    import functools
    assert grading.hands_off(lstm_step, lstm_step) == "captionlib.lstm.lstm_step"
    assert grading.hands_off(wrapper, lstm_step) == "captionlib.lstm.lstm_step"
    assert grading.hands_off(importer, lstm_step).startswith("import captionlib")
    assert grading.hands_off(functools.partial(lstm_step), lstm_step)
    assert grading.hands_off(lambda *a: lstm_step(*a), lstm_step)
    assert grading.hands_off(own, lstm_step) is None
    assert grading.hands_off(None, lstm_step) is None


def test_hands_off_allows_stand_ins_and_the_helpers_lessons_give():
    from captionlib.bleu import closest_ref_length
    from captionlib.vocab import tokenize

    with contextlib.redirect_stdout(io.StringIO()):
        stand_in = l07.check_clipped_matches(lambda *a: (0, 0))  # wrong: the notebook goes on with a stand-in
    scope = {"clipped_matches": stand_in, "closest_ref_length": closest_ref_length, "tokenize": tokenize}
    exec("def corpus_bleu(references, hypotheses, max_n=4):\n"
         "    return clipped_matches(hypotheses[0], references[0], 1), closest_ref_length(references[0], 3), tokenize('a')", scope)
    assert grading.hands_off(scope["corpus_bleu"], l07.corpus_bleu) is None
    scope["bleu_scores"] = __import__("captionlib.bleu", fromlist=["bleu_scores"]).bleu_scores
    exec("def corpus_bleu(references, hypotheses, max_n=4):\n    return bleu_scores(references, hypotheses)['BLEU-4']", scope)
    assert grading.hands_off(scope["corpus_bleu"], l07.corpus_bleu) == "captionlib.bleu.bleu_scores"


def test_an_imported_reference_scores_zero_with_the_reason(capsys):
    from captionlib.lstm import lstm_step

    with contextlib.redirect_stdout(io.StringIO()):
        l02.check_lstm_step(lstm_step)                           # the values are right: the check says so
    assert grading.score("lstm_step") == 0.0
    assert "hands the work to captionlib (captionlib.lstm.lstm_step)" in capsys.readouterr().out


# ---- quiet test cells, skipped cells, the generated folder -------------------------------------------------------

def test_quiet_sends_warnings_and_stderr_to_stdout(capsys):
    with grading.quiet():
        warnings.warn("a library's warning")
        print("a progress bar", file=sys.stderr)
    out, err = capsys.readouterr()
    assert err == "" and "a library's warning" in out and "a progress bar" in out


def test_marked_cells_become_a_no_op_only_while_grading():
    marked = [grading.SKIP_MARK + "\n", "train_for_an_hour()\n"]
    assert grading._skip(marked) == ["pass\n"]
    assert grading._skip(["x = 1\n"]) == ["x = 1\n"]
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        os.environ.pop("NBGRADER_EXECUTION", None)
        grading.skip_when_grading()
        assert grading._skip not in shell.input_transformers_cleanup
        os.environ["NBGRADER_EXECUTION"] = "autograde"
        grading.skip_when_grading()
        assert grading._skip in shell.input_transformers_cleanup
        assert shell.transform_cell("".join(marked)).strip() == "pass"
    finally:
        os.environ.pop("NBGRADER_EXECUTION", None)
        if grading._skip in shell.input_transformers_cleanup:
            shell.input_transformers_cleanup.remove(grading._skip)
        InteractiveShell.clear_instance()


def test_graded_folder_is_generated_from_the_solutions():
    assert grading.stale_course(GRADED) == [], "graded/ is stale: run `python -m captionlib.course build`"


def _graded():
    return sorted(GRADED.glob("source/*/*.ipynb"))


def test_every_notebook_is_valid_nbformat():
    for path in sorted((REPO / "solutions").glob("*.ipynb")) + sorted((REPO / "lessons").glob("*.ipynb")) + _graded():
        nbformat.validate(nbformat.read(path, as_version=4))


def test_graded_notebooks_carry_nbgrader_metadata_where_nbgrader_needs_it():
    """Schema-3 metadata on every cell with a solution region (nbgrader refuses a region without it), a locked test
    cell with the exercise's points after each answer, unique grade ids, and every lesson with exercises present."""
    names = [p.stem for p in _graded()]
    assert names == [p.stem for p in sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb"))]
    for path in _graded():
        nb = nbformat.read(path, as_version=4)
        ids, answers, tests = [], 0, 0
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader")
            if "### BEGIN SOLUTION" in cell.source:
                assert meta and meta["solution"] and not meta["locked"] and meta["schema_version"] == 3, path
                answers += 1
            if meta:
                ids.append(meta["grade_id"])
                if meta["grade"]:
                    exercise = meta["grade_id"].removeprefix("test_")
                    assert meta["locked"] and meta["points"] == grading.total(exercise)
                    assert cell.source.rstrip().endswith(f"score({exercise!r})                             "
                                                         f"# your points for {exercise} (nbgrader reads this number)")
                    tests += 1
            elif cell.cell_type == "code":
                assert cell.source.startswith(grading.SKIP_MARK), (path.name, cell.source[:80])
        assert answers == tests >= 1 and len(ids) == len(set(ids)), path


# ---- real nbgrader ----------------------------------------------------------------------------------------------

nbgrader = pytest.importorskip("nbgrader", reason="nbgrader is in the test extra (pip install -e '.[test]')")


def _run(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # alembic
    return subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """graded/ copied, every assignment generated (nbgrader generate_assignment, as an instructor runs it)."""
    folder = tmp_path_factory.mktemp("course")
    shutil.copytree(GRADED, folder, dirs_exist_ok=True)
    for name in [p.stem for p in sorted(GRADED.glob("source/*/*.ipynb"))]:
        done = _run(folder, "generate_assignment", name, "--force")
        assert done.returncode == 0 and (folder / "release" / name / f"{name}.ipynb").exists(), done.stdout + done.stderr
    return folder


def test_generate_assignment_blanks_every_answer(course):
    for path in sorted(course.glob("release/*/*.ipynb")):
        text = path.read_text()
        assert "### BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text, path


def test_validate_passes_every_lesson_source(course):
    """The solutions earn every point under nbgrader, with the cells no check needs skipped (and the hand-off rule
    finds no captionlib call in them beyond the helpers the lessons give)."""
    for path in sorted(course.glob("source/*/*.ipynb")):
        done = _run(course, "validate", str(path))
        assert "Success! Your notebook passes all the tests." in done.stdout, (path.name, done.stdout[-3000:], done.stderr[-2000:])


def test_validate_invert_shows_the_blank_release_failing(course):
    done = _run(course, "validate", "--invert", "release/02_lstm_equations/02_lstm_equations.ipynb")
    assert "Success! The notebook does not pass any tests." in done.stdout, done.stdout + done.stderr


def _strip(source: str) -> str:
    return "\n".join(l for l in source.split("\n") if l.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def _submit(course: Path, student: str, answers) -> None:
    """A student's copy of the released lesson 02 with answers(grade_id, solution source) in its answer cells."""
    name = "02_lstm_equations"
    release = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    source = nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)
    for cell, solved in zip(release.cells, source.cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and answers is not None:
            cell.source = answers(meta["grade_id"], _strip(solved.source))
    target = course / "submitted" / student / name
    target.mkdir(parents=True, exist_ok=True)
    nbformat.write(release, target / f"{name}.ipynb")


def test_autograde_three_submissions_scores_and_feedback(course):
    """Lesson 02 (two exercises: lstm_step 5 points, lstm_unroll 6): the solutions score 11/11; the blank release 0
    with the 'not done' message; one named mistake in lstm_step keeps lstm_step's other parts (3/5) and all of
    lstm_unroll, and its feedback page names the mistake; an imported reference scores 0 for that exercise."""
    wrong_order = "i, f, o, g = gates.chunk(4, dim=1)"
    _submit(course, "solutions", lambda gid, s: s)
    _submit(course, "blank", None)
    _submit(course, "gates", lambda gid, s: s.replace("i, f, g, o = gates.chunk(4, dim=1)", wrong_order)
            if gid == "answer_lstm_step" else s)
    _submit(course, "imports", lambda gid, s: "from captionlib.lstm import lstm_step" if gid == "answer_lstm_step" else s)
    done = _run(course, "autograde", "02_lstm_equations", "--create", "--force")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    done = _run(course, "export", "--to", "scores.csv")
    assert done.returncode == 0, done.stderr
    scores = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(open(course / "scores.csv"))
              if row["assignment"] == "02_lstm_equations"}
    print("\n", scores)
    assert scores == {"solutions": (11.0, 11.0), "blank": (0.0, 11.0), "gates": (9.0, 11.0), "imports": (6.0, 11.0)}

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grades = {s: {g.name: g.score for g in gb.find_submission_notebook("02_lstm_equations", "02_lstm_equations", s).grades
                      if g.max_score} for s in scores}
    assert grades["gates"] == {"test_lstm_step": 3.0, "test_lstm_unroll": 6.0}
    assert grades["imports"] == {"test_lstm_step": 0.0, "test_lstm_unroll": 6.0}

    done = _run(course, "generate_feedback", "02_lstm_equations", "--force")
    assert done.returncode == 0, done.stderr
    page = lambda s: (course / "feedback" / s / "02_lstm_equations" / "02_lstm_equations.html").read_text()  # noqa: E731
    assert "the gates are in the wrong order" in page("gates") and "lstm_step: 3 of 5 points" in page("gates")
    assert "not done yet" in page("blank") and "lstm_step: 0 of 5 points" in page("blank")
    assert "hands the work to captionlib" in page("imports")
    assert "Score: 11.0 / 11.0" in page("solutions") or "11.0 / 11.0" in page("solutions")
