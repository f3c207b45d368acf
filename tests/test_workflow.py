"""The GitHub Actions workflow parses, and its jobs run what the README and the issue say they run: a broken
edit of .github/workflows/ci.yml fails `make test` here instead of a CI run nobody watches."""
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "ci.yml"


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def commands(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_the_workflow_parses_and_runs_the_readme_command_on_cpu_and_gpu():
    w = workflow()
    assert w["name"] == "ci" and {"push", "pull_request"} <= set(w[True])   # YAML 1.1 reads the key `on` as True
    jobs = w["jobs"]
    assert set(jobs) == {"cpu", "gpu"}
    for job in jobs.values():
        assert "bash .ci/run" in commands(job)                            # .ci/run runs `make test`
        assert job["container"]["image"].startswith("python:3.11-")       # Debian, as root: .ci/run apt-installs
        assert job["timeout-minutes"] <= 120
    assert jobs["cpu"]["runs-on"] == "ubuntu-latest"
    assert "make test" in (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()


def test_the_gpu_job_needs_a_gpu_runs_the_notebooks_on_cuda_and_keeps_them():
    gpu = workflow()["jobs"]["gpu"]
    assert set(gpu["runs-on"]) == {"self-hosted", "gpu"} and "--gpus all" in gpu["container"]["options"]
    assert gpu["env"]["CAPTIONLIB_REQUIRE_CUDA"] == "1"                   # a GPU that is not seen fails the CUDA tests
    runs = commands(gpu)
    assert any("captionlib.course run -p device cuda --out runs/gpu" in r for r in runs)
    upload = next(s for s in gpu["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and "runs/gpu/timings.md" in upload["with"]["path"]
    assert "runs/gpu/*.ipynb" in upload["with"]["path"]


def test_every_action_is_pinned_to_a_major_version():
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                name, _, version = step["uses"].partition("@")
                assert version.startswith("v") and version[1:].split(".")[0].isdigit(), step["uses"]


def test_the_timing_table_names_the_device_and_totals_the_minutes():
    from captionlib.course import timing_table

    table = timing_table([("00_setup_and_data.ipynb", "ok", 0.5), ("01_cnn_features.ipynb", "ok", 1.25)], {"device": "cuda"})
    assert "| 01_cnn_features.ipynb | ok | 1.25 |" in table and "| total | | 1.75 |" in table
    assert "parameters: {'device': 'cuda'}" in table and ("CPU (" in table or "NVIDIA" in table or "GPU" in table)
