"""scripts/study_loss_styles.py --report-only: the study's tables from finished models' results, checked
against statistics computed here another way (the statistics module and Welch's formula)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from PIL import Image
from scipy.stats import t as student_t

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "study_loss_styles.py"
TRAINED = ["en", "de"]
UNSEEN = ["ko", "vi"]


def fake_report(languages: list[str], level: float) -> dict:
    """A report whose every recall is ``level`` (+1 per R@K step) and whose MRV is ``level / 10``."""
    per_language = {lang: {"r1": level, "r5": level + 1, "r10": level + 2, "mean_rank": 100 - level}
                    for lang in languages}
    return {"tr": per_language, "ir": per_language, "mean_recall": level + 1,
            "mrv": {"tr": level / 10, "ir": level / 20}, "k_test": 16}


def write_result(root: Path, name: str, group: str, seed: int | None, level: float) -> None:
    reports = {f"{subset}_{ranking}": fake_report(langs, level + (0 if ranking == "similarity" else -5))
               for subset, langs in (("test", TRAINED), ("unseen", UNSEEN)) for ranking in ("similarity", "replace")}
    result = {"name": name, "group": group, "seed": seed, "threads": 1, "eval_s": 10.0, "reports": reports}
    (root / "runs" / name).mkdir(parents=True)
    if seed is not None:
        result.update(train_s=100.0, final_losses={"loss_contrastive": 2.0, "loss_itm": 0.6, "loss_mlm": 7.0})
        (root / "runs" / name / "train" / "model").mkdir(parents=True)
        record = {"settings": {"training": {"max_steps": 100}}}
        (root / "runs" / name / "train" / "model" / "training_run.json").write_text(json.dumps(record), encoding="utf-8")
    (root / "runs" / name / "result.json").write_text(json.dumps(result), encoding="utf-8")


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of Welch's t-test, from its formula (Welch-Satterthwaite degrees of freedom)."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * student_t.sf(abs(t), df)


def test_report_only_aggregates_seeds_and_tests_differences(tmp_path):
    reference = {0: 40.0, 1: 42.0, 2: 41.0}
    cross_modal = {0: 30.0, 1: 30.5, 2: 29.0}
    write_result(tmp_path, "untrained", "untrained", None, 5.0)
    for seed in reference:
        write_result(tmp_path, f"one-to-k-released-seed{seed}", "one-to-k (released)", seed, reference[seed])
        write_result(tmp_path, f"cross-modal-seed{seed}", "cross-modal", seed, cross_modal[seed])
    command = [sys.executable, str(SCRIPT), "--output", str(tmp_path), "--report-only", "--seeds", "0", "1", "2",
               "--groups", "untrained", "one-to-k (released)", "cross-modal"]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    written = (tmp_path / "loss_styles.md").read_text(encoding="utf-8")
    assert printed.strip() == written.strip()
    assert "--seeds 0 1 2 --max-steps 100 --k-test 16 --groups" in written  # the settings the models ran with

    # Summary row: mean recall = level + 1, R@1 = level, MRV TR = level / 10, mean rank = 100 - level.
    levels = list(cross_modal.values())

    def cell(values):
        return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"

    row = (f"| cross-modal | 3 | {cell([v + 1 for v in levels])} | {cell(levels)} | {cell([v / 10 for v in levels])} | "
           f"{cell([v / 20 for v in levels])} | {cell([100 - v for v in levels])} |")
    assert row in written
    assert "| untrained | 1 | 6.00 | 5.00 | 0.50 | 0.25 | 95.00 |" in written

    # Differences from the reference, with Welch's p computed here.
    ours, theirs = [v + 1 for v in levels], [v + 1 for v in reference.values()]
    p_value = welch_p(ours, theirs)
    difference = statistics.mean(ours) - statistics.mean(theirs)
    assert (f"| cross-modal | trained 10 | mean_recall | {difference:+.2f} | {p_value:.3f} | "
            f"{'yes' if p_value < 0.05 else 'no'} |") in written

    # Per-language R@1 / R@5 / R@10, mean over seeds.
    mean_level = statistics.mean(levels)
    assert f"| cross-modal | {mean_level:.1f} / {mean_level + 1:.1f} / {mean_level + 2:.1f} |" in written

    with Image.open(tmp_path / "loss_styles.png") as plot:
        assert plot.format == "PNG" and plot.width > 500


def test_report_only_without_results_is_one_clear_line(tmp_path):
    finished = subprocess.run([sys.executable, str(SCRIPT), "--output", str(tmp_path), "--report-only"],
                              capture_output=True, text=True)
    assert finished.returncode != 0
    assert finished.stderr.strip().splitlines() == [f"no finished model under {tmp_path / 'runs'}: run the study first"]


def test_a_study_folder_refuses_models_of_another_budget(tmp_path):
    write_result(tmp_path, "cross-modal-seed0", "cross-modal", 0, 30.0)
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    finished = subprocess.run([sys.executable, str(SCRIPT), "--output", str(tmp_path), "--max-steps", "50"],
                              capture_output=True, text=True)
    assert finished.returncode != 0
    assert finished.stderr.strip().splitlines() == [
        f"{tmp_path} holds models of --max-steps 100, not 50: rerun with that value, or choose another --output "
        "for another budget"]
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before  # nothing started
