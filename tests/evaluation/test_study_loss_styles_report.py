"""scripts/study_loss_styles.py --report-only: the study's tables from finished models' results, checked
against statistics computed here another way (the statistics module and Welch's formula)."""

from __future__ import annotations

import importlib
import json
import math
import statistics
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from scipy.stats import t as student_t

from modeling_ccr.app.testing import run_script_in_process

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "study_loss_styles.py"
SUBSETS = {"test": ["en", "de", "fr"], "unseen": ["ko", "vi"]}
LEVEL_SHIFT = {("test", "similarity"): 0.0, ("test", "replace"): -5.0, ("unseen", "similarity"): -3.0,
               ("unseen", "replace"): -7.0}
DIRECTION_SHIFT = {"tr": 0.0, "ir": 0.5}
K_TEST = 8  # not the script's default (16): the report must read it from the results


def r1(level: float, direction: str, language_index: int) -> float:
    """R@1 of a fake report: each direction and language its own value (R@5 = R@1 + 1, R@10 = R@1 + 2)."""
    return level + DIRECTION_SHIFT[direction] + 2 * language_index


def fake_report(languages: list[str], level: float) -> dict:
    report = {direction: {lang: {"r1": r1(level, direction, j), "r5": r1(level, direction, j) + 1,
                                 "r10": r1(level, direction, j) + 2, "mean_rank": 100 - r1(level, direction, j)}
                          for j, lang in enumerate(languages)} for direction in ("tr", "ir")}
    return {**report, "mean_recall": level + 1, "mrv": {"tr": level / 10, "ir": level / 20}, "k_test": K_TEST,
            "num_images": 300}


def write_result(root: Path, name: str, group: str, seed: int | None, level: float, steps: int = 100) -> None:
    reports = {f"{subset}_{ranking}": fake_report(SUBSETS[subset], level + shift)
               for (subset, ranking), shift in LEVEL_SHIFT.items()}
    result = {"name": name, "group": group, "seed": seed, "threads": 1, "eval_s": 10.0, "reports": reports,
              "left_out": []}
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    if seed is not None:
        result.update(train_s=100.0 + seed, resumed=False,
                      final_losses={"loss_contrastive": 2.0, "loss_itm": 0.6, "loss_mlm": 7.0})
        (folder / "train" / "model").mkdir(parents=True)
        record = {"settings": {"training": {"max_steps": steps, "per_device_train_batch_size": 64}},
                  "languages": SUBSETS["test"]}
        (folder / "train" / "model" / "training_run.json").write_text(json.dumps(record), encoding="utf-8")
    (folder / "result.json").write_text(json.dumps(result), encoding="utf-8")


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of Welch's t-test, from its formula (Welch-Satterthwaite degrees of freedom)."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * student_t.sf(abs(t), df)


def student_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of Student's t-test (pooled variance), which the report must not use."""
    pooled = ((len(a) - 1) * statistics.variance(a) + (len(b) - 1) * statistics.variance(b)) / (len(a) + len(b) - 2)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(pooled * (1 / len(a) + 1 / len(b)))
    return 2 * student_t.sf(abs(t), len(a) + len(b) - 2)


def cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


REFERENCE = [40.0, 42.0, 41.0]
CROSS_MODAL = [36.0, 45.0, 31.0]  # far more spread than the reference: Welch's and Student's p differ
CROSS_LINGUAL = [33.0, 37.0, 35.0]  # p between 0.01 and 0.05: "yes"


def study_folder(root: Path) -> Path:
    write_result(root, "untrained", "untrained", None, 5.0)
    for seed in range(3):
        write_result(root, f"one-to-k-released-seed{seed}", "one-to-k (released)", seed, REFERENCE[seed])
        write_result(root, f"cross-modal-seed{seed}", "cross-modal", seed, CROSS_MODAL[seed])
        write_result(root, f"cross-lingual-seed{seed}", "cross-lingual", seed, CROSS_LINGUAL[seed])
    return root


@pytest.fixture
def run_script(monkeypatch):
    """The script's ``main`` with ARGS in this process (no fresh interpreter's imports), as ``python SCRIPT
    ARGS`` would run it (``run_script_in_process``)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    module = importlib.import_module(SCRIPT.stem)
    return lambda *args: run_script_in_process(module.main, SCRIPT, *args)


def run_report(run_script, root: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_script("--output", root, "--report-only", "--seeds", "0", "1", "2", "3",
                      "--groups", "untrained", "one-to-k (released)", "cross-modal", "cross-lingual", *extra)


def test_report_only_aggregates_seeds_and_tests_differences(run_script, tmp_path):
    finished = run_report(run_script, study_folder(tmp_path))
    assert finished.returncode == 0, finished.stderr
    written = (tmp_path / "loss_styles.md").read_text(encoding="utf-8")
    assert finished.stdout.strip() == written.strip()
    # The settings the models ran with, read from their files (seed 3 never ran; k_test is not the default).
    assert f"--seeds 0 1 2 --max-steps 100 --k-test {K_TEST} --groups untrained 'one-to-k (released)'" in written
    assert "budget per trained model: 100 steps x 64 images x 3 captions; seeds [0, 1, 2]" in written

    # Summary rows: mean recall = level + 1, R@1 = mean over directions and languages, MRV TR / IR = level / 10
    # and level / 20, mean rank = 100 - R@1; each table its own shift of the level.
    def summary_row(group: str, levels: list[float], subset: str, ranking: str) -> str:
        shifted = [level + LEVEL_SHIFT[subset, ranking] for level in levels]
        r1s = [statistics.mean([r1(level, d, j) for d in ("tr", "ir") for j in range(len(SUBSETS[subset]))])
               for level in shifted]
        figures = ([v + 1 for v in shifted], r1s, [v / 10 for v in shifted], [v / 20 for v in shifted],
                   [100 - v for v in r1s])
        return f"| {group} | 3 | " + " | ".join(cell(values) for values in figures) + " |"

    sections = written.split("### ")
    for subset, title in (("test", "the 10 trained languages"), ("unseen", "5 languages outside")):
        for ranking in ("similarity", "replace"):
            section = next(s for s in sections if title in s.splitlines()[0] and s.splitlines()[0].endswith(ranking))
            assert summary_row("cross-modal", CROSS_MODAL, subset, ranking) in section
            assert ("untrained ITM heads" in section) == (ranking == "replace")
    untrained_r1 = statistics.mean([r1(5.0, d, j) for d in ("tr", "ir") for j in range(3)])
    assert f"| untrained | 1 | 6.00 | {untrained_r1:.2f} | 0.50 | 0.25 | {100 - untrained_r1:.2f} |" in written

    # Differences from the reference: Welch's p, computed here, and the verdicts either way.
    for group, levels, verdict in (("cross-modal", CROSS_MODAL, "no"), ("cross-lingual", CROSS_LINGUAL, "yes")):
        ours, theirs = [v + 1 for v in levels], [v + 1 for v in REFERENCE]
        p_value = welch_p(ours, theirs)
        assert f"{p_value:.3f}" != f"{student_p(ours, theirs):.3f}"
        assert (p_value < 0.05) == (verdict == "yes")
        difference = statistics.mean(ours) - statistics.mean(theirs)
        assert (f"| {group} | 3 / 3 | trained 10 | mean_recall | {difference:+.2f} | {p_value:.3f} | {verdict} |"
                in written)
    mrv_difference = statistics.mean(CROSS_LINGUAL) / 20 - statistics.mean(REFERENCE) / 20
    assert f"| cross-lingual | 3 / 3 | trained 10 | mrv_ir | {mrv_difference:+.2f} |" in written

    # Per-language R@1 / R@5 / R@10, mean over seeds: the whole TR row of the trained languages.
    mean_level = statistics.mean(CROSS_MODAL)
    cells = [f"{r1(mean_level, 'tr', j):.1f} / {r1(mean_level, 'tr', j) + 1:.1f} / {r1(mean_level, 'tr', j) + 2:.1f}"
             for j in range(3)]
    tr_table = next(s for s in sections if s.startswith("Per language, TR") and "trained languages" in s)
    assert "| cross-modal | " + " | ".join(cells) + " |" in tr_table

    assert "| cross-modal | 101 | 10 | 2.000 / 0.600 / 7.000 |" in written  # mean train s of 100, 101, 102
    with Image.open(tmp_path / "loss_styles.png") as plot:
        assert plot.format == "PNG" and plot.width > 500


def test_report_only_without_results_is_one_clear_line(run_script, tmp_path):
    finished = run_script("--output", tmp_path, "--report-only")
    assert finished.returncode != 0
    assert finished.stderr.strip().splitlines() == [f"no finished model under {tmp_path / 'runs'}: run the study first"]


def test_mixed_budgets_are_not_reported_together(run_script, tmp_path):
    study_folder(tmp_path)
    write_result(tmp_path, "cross-lingual-seed3", "cross-lingual", 3, 30.0, steps=50)
    finished = run_report(run_script, tmp_path)
    assert finished.returncode != 0
    assert finished.stderr.strip().splitlines()[-1] == (
        f"{tmp_path} mixes budgets (steps [50, 100], k_test [{K_TEST}]): report each budget from its own --output")


def test_a_study_folder_refuses_models_of_another_budget(run_script, tmp_path):
    write_result(tmp_path, "cross-modal-seed0", "cross-modal", 0, 30.0)
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    finished = run_script("--output", tmp_path, "--max-steps", "50")
    assert finished.returncode != 0
    assert finished.stderr.strip().splitlines() == [
        f"{tmp_path} holds models of --max-steps 100, not 50: rerun with that value, or choose another --output "
        "for another budget"]
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before  # nothing started
