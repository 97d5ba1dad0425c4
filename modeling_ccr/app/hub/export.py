"""``ccr export MODEL_DIR --output HUB_DIR``: a folder ready to upload to the Hub.

It holds the config (with ``auto_map`` for AutoModel, AutoProcessor and the zero-shot image classification
pipeline), the safetensors weights, the remote-code files, the processor and tokenizer files, the model
card (README.md) written from the ``--report`` files, those reports under ``evaluation/``, the training
record, the licences, and with ``--onnx`` the two towers as ONNX graphs under ``onnx/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hub_cards.model_card import load_report, model_card

from ...atomic_io import check_output, write_output
from ...default_model import CCR_MODEL_FOLDER
from ...modeling_ccr import CCRModel
from ...output_lock import output_lock
from ...processing_ccr import CCRProcessor
from ..cli import model_folder

DEFAULT_ORG = "ccr-1tok"
PROVENANCE_FILE = "provenance.json"
LICENSES_FILE = "LICENSES.md"
# What the embedded default model (``ccr build-default``) and the models trained from it start from.
DEFAULT_MODEL_PROVENANCE = {
    "base_model": ["intfloat/multilingual-e5-small"],
    "license": "other",
    "license_name": "mit-and-apache-2.0",
}
CODE_LICENSE_NOTE = "\n- Model code (`*.py` in this folder): ccr-1tok, MIT.\n"


@dataclass
class ExportResult:
    """What :func:`export_model` wrote: the folder, its files (relative paths) and the ONNX check."""

    folder: Path
    files: list[str]
    kept: list[str] = field(default_factory=list)
    onnx_max_abs_diff: dict[str, float] | None = None


def provenance(model_dir: str | os.PathLike, model: CCRModel) -> dict:
    """Base models and licence of a model folder: its ``provenance.json`` (written by ``ccr convert-ccrk``),
    else those of the embedded default model when the towers have its shape, else unknown (empty)."""
    path = Path(model_dir) / PROVENANCE_FILE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    text, vision = model.config.text_config, model.config.vision_config
    if (vision.model_type, text.model_type, text.hidden_size, text.vocab_size) == ("efficientnet_lite", "bert", 384, 250037):
        return dict(DEFAULT_MODEL_PROVENANCE)
    return {}


def licences_with_code_note(note: str) -> str:
    """The LICENSES.md of an export: the model folder's licence ``note`` and the code licence line once, at
    the end (an export of an export, which already has the line, gets the same text)."""
    code_line = CODE_LICENSE_NOTE.strip()
    kept = "\n".join(line for line in note.splitlines() if line.strip() != code_line)
    return kept.rstrip("\n") + "\n" + CODE_LICENSE_NOTE


def _report_name(index: int, report: dict) -> str:
    stage = "similarity" if report.get("k_test") is None else f"rerank{report['k_test']}"
    stem = "-".join(str(part) for part in (report["dataset"], report["split"] or "default", stage))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return f"evaluation/{index:02d}-{safe}.json"


def export_model(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    report_paths: Sequence[str | os.PathLike] = (),
    *,
    repo_id: str | None = None,
    metric_space: str = f"{DEFAULT_ORG}/mrv",
    demo_space: str | None = None,
    dataset_repo: str = f"{DEFAULT_ORG}/cldr-emoji",
    base_models: Sequence[str] | None = None,
    license: str | None = None,
    with_onnx: bool = False,
    overwrite: bool = False,
) -> ExportResult:
    """Write the Hub folder of the CCR model in ``model_dir`` to ``output_dir``.

    ``output_dir`` must be new or empty; with ``overwrite`` an existing export (a CCR model folder) is
    replaced by the new one (old model files, ONNX graphs and report copies go), and every other file in it
    is kept (:func:`modeling_ccr.atomic_io.write_output`).
    ``repo_id`` (default ``ccr-1tok/<output folder name>``) is the id the card's examples load from;
    the card links ``metric_space``, ``dataset_repo`` and, when given, ``demo_space``.
    """
    output = Path(output_dir)
    check_output(output, CCR_MODEL_FOLDER, overwrite)
    reports = [load_report(path) for path in report_paths]
    model = CCRModel.from_pretrained(model_dir).eval()
    processor = CCRProcessor.from_pretrained(model_dir)
    origin = provenance(model_dir, model)
    repo_id = repo_id or f"{DEFAULT_ORG}/{output.resolve().name}"
    report_files = [_report_name(index, report) for index, report in enumerate(reports)]
    onnx_check: dict[str, float] = {}

    def write(staging: Path) -> None:
        model.save_pretrained(staging)  # config.json's auto_map serves AutoModel and the card's pipeline
        processor.save_pretrained(staging)
        source_licences = Path(model_dir) / LICENSES_FILE
        note = source_licences.read_text(encoding="utf-8") if source_licences.is_file() else "# Licences\n"
        (staging / LICENSES_FILE).write_text(licences_with_code_note(note), encoding="utf-8")
        for name in ("training_run.json", PROVENANCE_FILE):
            if (Path(model_dir) / name).is_file():
                shutil.copyfile(Path(model_dir) / name, staging / name)
        for path, report in zip(report_files, reports, strict=True):
            (staging / path).parent.mkdir(exist_ok=True)
            (staging / path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        card = model_card(
            model_dir,
            reports,
            repo_id=repo_id,
            base_models=list(base_models if base_models is not None else origin.get("base_model", [])),
            license=license or origin.get("license", "mit"),
            license_name=None if license else origin.get("license_name"),
            metric_space=metric_space,
            demo_space=demo_space,
            dataset_ids={"cldr-emoji": dataset_repo},
            caption_prefix=processor.caption_prefix,
            report_files=report_files,
        )
        card.save(staging / "README.md")
        if with_onnx:
            from .onnx_export import export_onnx

            onnx_check.update(export_onnx(model, processor, staging / "onnx"))

    kept = write_output(output, write, CCR_MODEL_FOLDER, overwrite)
    files = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    return ExportResult(output, files, kept, onnx_check or None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=model_folder, help="a CCR model folder (ccr build-default, ccr train, ccr convert-ccrk)")
    parser.add_argument("--output", required=True, help="the Hub folder to write (new or empty)")
    parser.add_argument("--report", action="append", default=[], metavar="REPORT_JSON",
                        help="a `ccr evaluate` report.json whose results go into the card (repeatable)")
    parser.add_argument("--repo-id", help="the model's Hub id shown in the card (default ccr-1tok/<output name>)")
    parser.add_argument("--metric-space", default=f"{DEFAULT_ORG}/mrv", help="Hub id of the MRV metric Space")
    parser.add_argument("--demo-space", default=f"{DEFAULT_ORG}/demo", help="Hub id of the demo Space")
    parser.add_argument("--dataset-repo", default=f"{DEFAULT_ORG}/cldr-emoji",
                        help="Hub id of the embedded benchmark (cldr-emoji)")
    parser.add_argument("--base-model", action="append", default=None,
                        help="Hub id of a tower the model started from (repeatable; default: from the folder)")
    parser.add_argument("--license", help="Hub licence id of the weights (default: from the folder)")
    parser.add_argument("--onnx", action="store_true",
                        help="also write onnx/image_encoder.onnx and onnx/text_encoder.onnx, checked with onnxruntime")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing export (a CCR model folder): its model files are replaced, others kept")


def run(args: argparse.Namespace) -> int:
    try:
        with output_lock(args.output):  # before the model loads: an unwritable or busy output fails at once
            result = export_model(
                args.model_dir, args.output, args.report, repo_id=args.repo_id, metric_space=args.metric_space,
                demo_space=args.demo_space, dataset_repo=args.dataset_repo, base_models=args.base_model,
                license=args.license, with_onnx=args.onnx, overwrite=args.overwrite,
            )
    except (ValueError, OSError) as error:
        print(f"ccr export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(result.files)} files to {result.folder}")
    if result.kept:
        print(f"kept {len(result.kept)} file(s) the export does not write: {', '.join(result.kept)}")
    if result.onnx_max_abs_diff:
        diffs = ", ".join(f"{name} {diff:.2e}" for name, diff in result.onnx_max_abs_diff.items())
        print(f"ONNX vs PyTorch, largest absolute difference: {diffs}")
    return 0
