"""Fixtures of the Hub tests: a tiny model folder with a real `ccr evaluate` report, and its export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modeling_ccr.app.hub.export import export_model
from modeling_ccr.default_model import save_model_folder
from modeling_ccr.evaluation import evaluate_retrieval
from modeling_ccr.evaluation.report import build_report, write_report
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "evaluation"))
from eval_fixtures import tiny_benchmark  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny CCR model folder (EfficientNet-Lite tower, so the remote code includes its files)."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    save_model_folder(tiny_ccr_model("efficientnet_lite"), tiny_ccr_processor(), folder, "# Licences\n\n- test weights\n")
    return folder


@pytest.fixture(scope="session")
def tiny_reports(tiny_model_dir, tmp_path_factory) -> list[Path]:
    """Two real reports of the tiny model on a 3-language benchmark: similarity only, and re-ranked."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    dataset = tiny_benchmark(num_images=12)
    folder = tmp_path_factory.mktemp("reports")
    paths = []
    for k_test in (None, 4):
        result = evaluate_retrieval(model, processor, dataset, k_test=k_test, batch_size=8)
        report = build_report(result.metrics, model_dir=str(tiny_model_dir), dataset="cldr-emoji", split="test",
                              languages=result.languages, num_images=len(dataset), k_test=result.k_test)
        ranks = {"tr": result.ranks.tr.numpy(), "ir": result.ranks.ir.numpy()}
        paths.append(write_report(report, ranks, folder / f"report-{k_test}.json")["json"])
    return paths


@pytest.fixture(scope="session")
def tiny_export(tiny_model_dir, tiny_reports, tmp_path_factory) -> Path:
    """``ccr export`` of the tiny model with its two reports, linking the demo Space ``test-org/demo``."""
    output = tmp_path_factory.mktemp("export") / "ccr-tiny"
    export_model(tiny_model_dir, output, tiny_reports, repo_id="test-org/ccr-tiny", demo_space="test-org/demo")
    return output


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a `python -m modeling_ccr.app.cli` subprocess: this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


# A fresh interpreter in which every import of this project's packages is refused (the installed
# package's start-up hook, already run by site, is taken out too), except, when $IMPORT_ONLY_FROM names
# a folder, the copies of the packages in that folder.
HIDE_PACKAGES = textwrap.dedent(
    """
    import importlib.machinery
    import os
    import sys
    PROJECT = ("modeling_ccr", "hub_cards", "evaluate_mrv")
    IMPORT_ONLY_FROM = os.environ.get("IMPORT_ONLY_FROM")
    sys.meta_path = [f for f in sys.meta_path if not type(f).__module__.startswith(PROJECT)]
    for name in [name for name in sys.modules if name.split(".")[0] in PROJECT]:
        del sys.modules[name]
    class HidePackages:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] not in PROJECT:
                return None
            if IMPORT_ONLY_FROM:
                spec = importlib.machinery.PathFinder.find_spec(name, path or [IMPORT_ONLY_FROM])
                if spec is not None and str(spec.origin).startswith(IMPORT_ONLY_FROM + os.sep):
                    return spec
            raise ImportError(name + " is hidden for this test")
    sys.meta_path.insert(0, HidePackages())
    sys.path = [p for p in sys.path if p not in ("", ".")]
    """
)


def run_hidden(script: str, *args: str, cwd: Path, import_only_from: Path | None = None, **extra_env: str) -> dict | list:
    """Run ``script`` (which starts with :data:`HIDE_PACKAGES`) in a fresh interpreter; its last stdout line is JSON.

    With ``import_only_from``, the project's packages are imported from that folder's copies and nowhere else.
    ``extra_env`` is added to the interpreter's environment.
    """
    env = cli_env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(cwd / "modules"), **extra_env)
    env["PYTHONPATH"] = ""  # the checkout must not be importable either
    if import_only_from is not None:
        env["IMPORT_ONLY_FROM"] = str(Path(import_only_from).resolve())
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
