"""What a failed ``ccr index`` leaves beside the index: nothing when it failed before its first chunk; its
saved chunks otherwise (a rerun resumes from them), which the next run that cannot use them removes, saying
so. The commands run in this process (``ccr`` main)."""

from __future__ import annotations

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
    assert failed.returncode == 2 and "ccr index: error:" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "model", "photos"]  # nothing to resume: no work folder

    assert ccr_index(photos).returncode == 0
    write_truncated_png(photos / "z.png")  # the third image, in the third chunk
    failed = ccr_index(photos)
    assert failed.returncode == 2 and "ccr index: error:" in failed.stderr
    assert sorted(p.name for p in work.glob("chunk-*.npz")) == ["chunk-000000.npz", "chunk-000001.npz"]

    (photos / "z.png").unlink()  # the folder is as it was when the index was built: it is up to date
    current = ccr_index(photos)
    assert current.returncode == 0 and "is up to date: 2 images" in current.stdout
    assert not work.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broken", "index", "model", "photos"]
    removed = [r.getMessage() for r in caplog.records if str(work) in r.getMessage()]
    assert removed == [f"removed {work}: 2 chunk(s) of an interrupted build, not needed as the index {index} is up "
                       "to date"]
