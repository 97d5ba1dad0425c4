"""What a failed ``ccr index`` leaves beside the index: nothing when it failed before its first chunk; its
saved chunks otherwise (a rerun resumes from them), which the next run that cannot use them removes, saying
so. The commands run in this process (``ccr`` main)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.testing import save_tiny_model


def write_png(path: Path, seed: int) -> None:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)


def write_truncated_png(path: Path) -> None:
    """A PNG cut short, as a failed copy leaves it: its header reads, its pixels do not."""
    write_png(path, seed=99)
    path.write_bytes(path.read_bytes()[:200])


def write_banner_png(path: Path) -> None:
    """A PNG that decodes but that the processor refuses (30:1, beyond its aspect-ratio limit): a failure in
    the middle of a build, after the images were checked."""
    Image.new("RGB", (60, 2), "white").save(path)


def test_a_failed_build_leaves_only_resumable_chunks_and_the_next_current_run_removes_them(tmp_path, caplog):
    model = save_tiny_model(tmp_path / "model")
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(2):
        write_png(photos / f"p{seed}.png", seed)
    index, work = tmp_path / "index", tmp_path / ".index.partial"

    def ccr_index(folder: Path):
        return run_ccr_in_process("index", str(model), str(folder), "--output", str(index), "--chunk-images", "1",
                                  "--no-progress")

    broken_first = tmp_path / "broken"
    broken_first.mkdir()
    write_truncated_png(broken_first / "a.png")
    failed = ccr_index(broken_first)
    assert failed.returncode == 2
    assert failed.stderr.startswith(f"ccr index: error: image {broken_first.resolve() / 'a.png'} does not decode")
    # nothing to resume: no work folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "model", "photos"]

    assert ccr_index(photos).returncode == 0
    write_banner_png(photos / "z.png")  # the third image, in the third chunk
    failed = ccr_index(photos)
    assert failed.returncode == 2 and "ccr index: error:" in failed.stderr and "aspect ratio" in failed.stderr
    assert sorted(p.name for p in work.glob("chunk-*.npz")) == ["chunk-000000.npz", "chunk-000001.npz"]

    (photos / "z.png").unlink()  # the folder is as it was when the index was built: it is up to date
    current = ccr_index(photos)
    assert current.returncode == 0 and "is up to date: 2 images" in current.stdout
    assert not work.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broken", "index", "model", "photos"]
    removed = [r.getMessage() for r in caplog.records if str(work) in r.getMessage()]
    assert removed == [f"removed {work}: 2 chunk(s) of an interrupted build, not needed as the index {index} is up "
                       "to date"]


def test_unreadable_images_stop_the_build_unless_dropped_and_then_are_named_and_counted(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(3):
        write_png(photos / f"p{seed}.png", seed)
    write_truncated_png(photos / "cut.png")
    (photos / "empty.jpg").write_bytes(b"")
    index = tmp_path / "index"

    def ccr_index(*options: str):
        return run_ccr_in_process("index", str(model), str(photos), "--output", str(index), "--no-progress", *options)

    refused = ccr_index()
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert f"image {photos.resolve() / 'cut.png'} does not decode" in refused.stderr
    assert "--on-missing drop" in refused.stderr and not index.exists()

    dropped = ccr_index("--on-missing", "drop")
    assert dropped.returncode == 0, dropped.stderr
    warning = [line for line in dropped.stderr.splitlines() if line.startswith("ccr index: warning: left out")]
    assert warning and warning[0].startswith("ccr index: warning: left out 2 of 5 images (--on-missing drop): "
                                             "cut.png: ")
    assert "empty.jpg: " in warning[0]
    manifest = json.loads((index / "gallery.json").read_text())
    assert manifest["count"] == 3 and [item["path"] for item in manifest["items"]] == ["p0.png", "p1.png", "p2.png"]
    assert manifest["skipped"]["count"] == 2
    assert [line.split(":")[0] for line in manifest["skipped"]["images"]] == ["cut.png", "empty.jpg"]

    again = ccr_index("--on-missing", "drop")
    assert again.returncode == 0 and "is up to date: 3 images" in again.stdout
