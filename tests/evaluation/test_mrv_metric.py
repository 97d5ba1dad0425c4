"""MRV: the plain function, the evaluate module (by path and by bare name) and its cache registration."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import os
import runpy
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import evaluate
import numpy as np
import pytest
from eval_reference import reference_mrv
from evaluate.loading import CachedEvaluationModuleFactory

import evaluate_mrv
from evaluate_mrv import evaluate_cache

METRIC_DIR = Path(evaluate_mrv.__file__).resolve().parent
WORKED_EXAMPLE = [[0, 2, 0, 6], [1, 1, 1, 1]]
# Bare-name loading in a fresh interpreter: prints the result and the module the metric class came from.
LOAD_BY_NAME = (
    "import json, evaluate; m = evaluate.load('mrv'); "
    "result = m.compute(ranks=[[0, 2, 0, 6], [1, 1, 1, 1]]); "
    "print(json.dumps({'result': result, 'module': type(m).__module__}))"
)


def test_worked_example_known_values():
    assert evaluate_mrv.mean_rank_variance(WORKED_EXAMPLE) == pytest.approx(math.sqrt(6) / 2, abs=1e-12)
    assert evaluate_mrv.mean_rank_variance(WORKED_EXAMPLE, kind="variance") == pytest.approx(3.0, abs=1e-12)
    np.testing.assert_allclose(evaluate_mrv.rank_spread_per_instance(WORKED_EXAMPLE), [math.sqrt(6), 0.0])
    np.testing.assert_allclose(evaluate_mrv.mean_rank_per_language(WORKED_EXAMPLE), [0.5, 1.5, 0.5, 3.5])


@pytest.mark.parametrize("kind", ["std", "variance"])
def test_matches_loop_reference_on_random_ranks(kind):
    rng = np.random.default_rng(7)
    ranks = rng.integers(0, 500, size=(200, 6))
    expected = reference_mrv(ranks, variance=kind == "variance")
    assert evaluate_mrv.mean_rank_variance(ranks, kind=kind) == pytest.approx(expected, rel=1e-12)


def test_rank_base_does_not_change_mrv():
    ranks = np.random.default_rng(3).integers(0, 50, size=(30, 4))
    assert evaluate_mrv.mean_rank_variance(ranks + 1) == pytest.approx(evaluate_mrv.mean_rank_variance(ranks))


@pytest.mark.parametrize(
    ("ranks", "message"),
    [
        ([[0, 1], [0, 1, 2]], "ragged ranks: instance 0 has 2 languages but instance 1 has 3"),
        ([[0, -1], [1, 2]], "instance 0, language 1 is -1.0: ranks must be >= 0"),
        ([[0, float("nan")], [1, 2]], "instance 0, language 1 is nan: ranks must be finite"),
        ([[0, 1], [float("inf"), 2]], "instance 1, language 0 is inf: ranks must be finite"),
        ([[0], [1]], "got K=1: .* K = 1 is refused"),
        ([], "ranks is empty"),
        ([0, 2, 0, 6], r"shape \[N, K\]"),
        ([["a", "b"]], "must be a \\[N, K\\] list or array of numbers"),
    ],
)
def test_bad_input_raises_clear_errors(ranks, message):
    with pytest.raises(ValueError, match=message):
        evaluate_mrv.mean_rank_variance(ranks)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        evaluate_mrv.mean_rank_variance(WORKED_EXAMPLE, kind="var")


@pytest.mark.parametrize("path", [METRIC_DIR, METRIC_DIR / "mrv.py"], ids=["folder", "script"])
def test_evaluate_load_by_path(path):
    metric = evaluate.load(str(path))
    assert metric.name == "mrv"
    assert metric.compute(ranks=WORKED_EXAMPLE)["mrv"] == pytest.approx(math.sqrt(6) / 2, abs=1e-12)
    names = ["en", "de", "ja", "zh"]
    result = metric.compute(ranks=WORKED_EXAMPLE, kind="variance", per_language=True, languages=names)
    assert result == {"mrv": 3.0, "mean_rank_per_language": {"en": 0.5, "de": 1.5, "ja": 0.5, "zh": 3.5}}


def test_evaluate_module_bad_input():
    metric = evaluate.load(str(METRIC_DIR))
    with pytest.raises(ValueError, match="ragged ranks"):
        metric.compute(ranks=[[0, 1], [0, 1, 2]])
    with pytest.raises(ValueError, match="got 1 language names for ranks in K=2"):
        metric.compute(ranks=[[0, 1], [1, 2]], per_language=True, languages=["en"])
    with pytest.raises(ValueError, match="K = 1 is refused"):
        metric.compute(ranks=[[0], [3]])


def _offline_env(hf_home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("HF_MODULES_CACHE", "PYTHONPATH")}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_EVALUATE_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env


def _check_loaded_by_name(completed: subprocess.CompletedProcess) -> None:
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded["result"]["mrv"] == pytest.approx(math.sqrt(6) / 2, abs=1e-12)
    assert "evaluate-metric--mrv" in loaded["module"]
    assert "Using the latest cached version" not in completed.stderr  # the installed metric, loaded quietly


def test_bare_name_loads_offline_from_any_folder_through_the_start_up_file(tmp_path):
    """``evaluate.load("mrv")`` in a fresh interpreter, another folder and a fresh HF_HOME. Installed (always
    in CI), through the ``ccr_evaluate_mrv.pth`` that the install put in site-packages, which must be this
    repository's; not installed, through that file processed by ``site.addsitedir``, as site.py would."""
    code = LOAD_BY_NAME
    try:
        distribution = importlib.metadata.distribution("ccr-1tok")
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("CI"):  # CI installs the project: a missing install is a failure there
            raise
        site_dir = tmp_path / "site"
        site_dir.mkdir()
        shutil.copy(METRIC_DIR / "ccr_evaluate_mrv.pth", site_dir)
        code = f"import site; site.addsitedir({str(site_dir)!r}); " + LOAD_BY_NAME
    else:
        installed = [file for file in distribution.files or [] if str(file).endswith("ccr_evaluate_mrv.pth")]
        assert installed, (
            "ccr-1tok is installed without ccr_evaluate_mrv.pth in site-packages, so evaluate.load('mrv') cannot "
            "work: the build must copy evaluate_mrv/ccr_evaluate_mrv.pth to the root of the wheel (setup.py)"
        )
        assert installed[0].locate().read_bytes() == (METRIC_DIR / "ccr_evaluate_mrv.pth").read_bytes()
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=_offline_env(tmp_path / "fresh-hf-home"),
        capture_output=True, text=True, timeout=180,
    )
    _check_loaded_by_name(completed)


def test_start_up_hook_imports_almost_nothing():
    """The .pth runs in every interpreter: the hook must not import numpy, evaluate or even pathlib."""
    code = (
        "import sys; before = set(sys.modules); import evaluate_mrv.startup; "
        "print(sorted(set(sys.modules) - before))"
    )
    completed = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=METRIC_DIR.parent, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    imported = json.loads(completed.stdout.replace("'", '"'))
    # importlib and warnings are loaded by site.py anyway in a normal start; -S shows them as new.
    expected = {"evaluate_mrv", "__future__", "importlib", "warnings"}
    heavy = [name for name in imported if name.split(".")[0] not in expected]
    assert not heavy, imported


def test_failed_registration_warns_without_breaking_evaluate(tmp_path, monkeypatch):
    """What the start-up hook runs right after ``import evaluate`` (``register_or_warn``), in this process:
    with a modules cache that cannot be written it warns, naming the fix, and raises nothing, so the import
    it runs inside goes on (the hook itself runs in a fresh interpreter in the bare-name test above)."""
    from evaluate import config

    not_a_folder = tmp_path / "modules-cache-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setattr(config, "HF_MODULES_CACHE", str(not_a_folder))
    with pytest.warns(RuntimeWarning, match="could not install the 'mrv' metric into evaluate's module cache"):
        evaluate_cache.register_or_warn()
    assert not_a_folder.read_text() == ""  # nothing written over it


def test_registration_is_idempotent_and_wins_over_older_versions(tmp_path):
    target = evaluate_cache.register_in_evaluate_cache(tmp_path)
    for name in evaluate_cache.MODULE_FILES:
        assert (target / name).read_bytes() == (METRIC_DIR / name).read_bytes()
    assert evaluate_cache.register_in_evaluate_cache(tmp_path) == target
    # Another version of the metric cached later (a newer mtime) must not shadow the installed one.
    other = target.parent / ("0" * 64)
    other.mkdir()
    (other / "mrv.py").write_text("raise RuntimeError('stale metric')\n")
    future = (target / "mrv.py").stat().st_mtime + 100
    os.utime(other / "mrv.py", (future, future))
    dynamic_modules = tmp_path / "evaluate_modules"
    chosen = CachedEvaluationModuleFactory("evaluate-metric--mrv", dynamic_modules_path=str(dynamic_modules))
    assert chosen.get_module().hash == "0" * 64
    evaluate_cache.register_in_evaluate_cache(tmp_path)
    assert chosen.get_module().hash == target.name
    assert not [entry for entry in target.parent.iterdir() if entry.name.startswith(".staging-")]


def test_register_command(tmp_path, monkeypatch, capsys):
    """``python -m evaluate_mrv.evaluate_cache``, run as ``-m`` runs it (``runpy``, as ``__main__``) in this
    process, where evaluate is already imported (a fresh interpreter spends 5-10 s importing it)."""
    from evaluate import config

    monkeypatch.setattr(config, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is already imported, as a package's
        runpy.run_module("evaluate_mrv.evaluate_cache", run_name="__main__")
    script = Path(capsys.readouterr().out.strip().rsplit(" ", 1)[-1])
    assert script.is_file() and script.parent.parent.name == "evaluate-metric--mrv"
    assert str(script).startswith(str(tmp_path / "modules"))


def test_only_the_installed_versions_cached_module_warning_is_quieted(tmp_path):
    installed = tmp_path / "evaluate-metric--mrv" / ("a" * 64)
    note = evaluate_cache.InstalledVersionNote(installed)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("evaluate.loading", logging.WARNING, __file__, 1, message, None, None)

    template = ("Using the latest cached version of the module from {} (last modified on Mon Dec  7 16:57:34 "
                "2026) since it couldn't be found locally at evaluate-metric--mrv, or remotely on the Hugging "
                "Face Hub.")
    assert not note.filter(record(template.format(installed)))
    assert note.filter(record(template.format(tmp_path / "evaluate-metric--mrv" / ("b" * 64))))
    assert note.filter(record(f"Something else about {installed}"))
