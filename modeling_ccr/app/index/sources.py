"""What a gallery index is built from: a folder of image files, or a benchmark split in the common schema.

A source lists its n images in a fixed order (item i = row i of the index), with an id, a path (relative to
the folder for a folder; None where a benchmark carries the image bytes) and, for a benchmark, one caption
per language. Its ``fingerprint`` changes when the images change, so an index built from it is rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import datasets
from PIL import Image

from ...data.assemble import check_image_bytes, check_on_missing

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class GallerySource:
    """n images to index, in index order.

    ``description`` says where they come from (stored in the index, compared on rebuild); ``ids`` and
    ``paths`` are ``[n]`` lists; ``captions`` is ``[n]`` dicts language -> caption (benchmarks) or None
    (folders); ``languages`` the caption languages in layout order (empty for folders).
    """

    description: dict
    ids: list[str]
    paths: list[str | None]
    captions: list[dict[str, str]] | None
    languages: list[str]
    fingerprint: str
    folder: Path | None = None
    dataset: datasets.Dataset | None = None
    skipped: list[str] = field(default_factory=list)  # "name: why" of images left out (a benchmark's first 10)
    num_skipped: int = 0  # how many images were left out (on_missing="drop")

    def __len__(self) -> int:
        return len(self.ids)

    def without_unreadable(self, on_missing: str = "error") -> GallerySource:
        """This source less the image files that do not decode, checked by decoding each one (a folder's
        images; a benchmark's were checked as it loaded, by ``load_benchmark(on_missing=...)``).

        ``on_missing="error"`` raises ValueError naming the first unreadable file and the fix;
        ``"drop"`` returns a source without them, ``skipped`` naming them and ``num_skipped`` counting them.
        The fingerprint stays the folder's, so an index built without them is current until a file changes.
        """
        check_on_missing(on_missing)
        if self.dataset is not None:
            return self
        problems = {}
        for i, path in enumerate(self.paths):
            try:
                complaint = check_image_bytes((self.folder / path).read_bytes())
            except OSError as error:
                complaint = f"{type(error).__name__}: {error}"
            if complaint is None:
                continue
            if on_missing == "error":
                raise ValueError(
                    f"image {self.folder / path} does not decode ({complaint}): replace or remove the file, or "
                    "pass --on-missing drop to index the other images (the skipped ones are listed)"
                )
            problems[i] = f"{path}: {complaint}"
        if not problems:
            return self
        if len(problems) == len(self.paths):
            raise ValueError(f"none of the {len(self.paths)} images of {self.folder} decodes: nothing to index")
        kept = [i for i in range(len(self.paths)) if i not in problems]
        return replace(self, ids=[self.ids[i] for i in kept], paths=[self.paths[i] for i in kept],
                       skipped=list(problems.values()), num_skipped=len(problems))

    def images(self, rows: range) -> list[Image.Image | str]:
        """Images of ``rows`` (PIL images, or file paths the processor opens)."""
        if self.dataset is not None:
            return list(self.dataset[rows.start : rows.stop]["image"])
        return [str(self.folder / self.paths[i]) for i in rows]


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def folder_source(folder: str | os.PathLike) -> GallerySource:
    """Every image file under ``folder`` (recursively, by suffix: png, jpg, webp, ...), sorted by path.

    The fingerprint hashes each file's relative path, size and modification time, so adding, removing or
    rewriting an image changes it. Raises ValueError if the folder has no image file.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ValueError(f"{folder} is not a folder: pass a folder of images or a benchmark name")
    files = sorted(
        path for path in root.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )
    if not files:
        raise ValueError(
            f"{folder} holds no image file ({', '.join(IMAGE_SUFFIXES)}): pass a folder of images"
        )
    relative = [path.relative_to(root).as_posix() for path in files]
    stats = [(name, path.stat().st_size, path.stat().st_mtime_ns) for name, path in zip(relative, files, strict=True)]
    return GallerySource(
        description={"kind": "folder", "folder": str(root)},
        ids=relative,
        paths=relative,
        captions=None,
        languages=[],
        fingerprint=_digest(stats),
        folder=root,
    )


def benchmark_source(
    name_or_path: str,
    split: str = "test",
    languages: Sequence[str] | None = None,
    data_dir: str | None = None,
    image_dir: list[str] | None = None,
    on_missing: str = "error",
) -> GallerySource:
    """One split of a benchmark (``load_benchmark``): its images, ids and captions. ``on_missing``:
    ``"error"`` refuses an image that is missing or does not decode (or a caption missing in a chosen
    language); ``"drop"`` leaves such instances out, counted in ``num_skipped`` (the first few named in
    ``skipped``).

    The fingerprint hashes the benchmark, split, ids and captions and the image bytes (or, for image
    files, their paths, sizes and modification times, so rewriting an image changes it).
    """
    from ...data import load_benchmark

    dataset, report = load_benchmark(name_or_path, split=split, languages=languages, data_dir=data_dir,
                                     image_dir=image_dir, on_missing=on_missing, return_report=True)
    if len(dataset) == 0:
        raise ValueError(f"split {split!r} of {name_or_path} has no images: choose another split")
    chosen = list(dataset.features["captions"])
    raw = dataset.cast_column("image", datasets.Image(decode=False))["image"]
    image_hash = hashlib.sha256()
    for image in raw:
        image_hash.update(image["bytes"] if image.get("bytes") else _file_stamp(image["path"]))
    paths = [None if image.get("bytes") else image.get("path") for image in raw]
    description = {"kind": "benchmark", "benchmark": str(name_or_path), "split": split, "languages": chosen}
    captions = [dict(row) for row in dataset["captions"]]
    return GallerySource(
        description=description,
        ids=list(dataset["id"]),
        paths=paths,
        captions=captions,
        languages=chosen,
        fingerprint=_digest([description, list(dataset["id"]), captions, image_hash.hexdigest()]),
        dataset=dataset,
        skipped=list(report.splits[split].dropped_examples),
        num_skipped=report.splits[split].num_dropped,
    )


def write_benchmark_images(source: GallerySource, folder: Path) -> list[str]:
    """Write a benchmark's embedded image bytes into ``folder`` as ``<row>.<format>``; relative paths ``[n]``.

    Images that the benchmark keeps as files are not copied: their absolute path is returned instead.
    """
    raw = source.dataset.cast_column("image", datasets.Image(decode=False))["image"]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row, image in enumerate(raw):
        if not image.get("bytes"):
            paths.append(str(Path(image["path"]).resolve()))
            continue
        with Image.open(io.BytesIO(image["bytes"])) as opened:
            suffix = (opened.format or "png").lower()
        name = f"{row:06d}.{suffix}"
        (folder / name).write_bytes(image["bytes"])
        paths.append(f"{folder.name}/{name}")
    return paths


def _file_stamp(path: str) -> bytes:
    """An image file's path, size and modification time, for a fingerprint."""
    stat = os.stat(path)
    return f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()


def _default_split(images: str) -> str:
    """The split indexed when none is named: the only split of a folder that has one (an image folder with
    its metadata file at the top is one train split), else test."""
    from ...data import open_benchmark

    splits = open_benchmark(images).splits if Path(images).is_dir() else []
    return splits[0] if len(splits) == 1 else "test"


def source_from_argument(images: str, split: str | None = None, languages: Sequence[str] | None = None,
                         data_dir: str | None = None, image_dir: list[str] | None = None,
                         on_missing: str = "error") -> GallerySource:
    """``IMAGES`` of ``ccr index``: a folder of image files, indexed without captions; a folder of images
    with captions (a ``metadata.jsonl`` / ``metadata.csv``, ``modeling_ccr.data.imagefolder``) or a
    benchmark name or parquet folder, indexed as a benchmark (:func:`benchmark_source`) with its captions in
    ``languages`` (default: all) from ``split`` (default: a folder's only split, else test).

    ``split`` and ``languages`` (``--split``, ``--languages``) given for a folder without captions raise
    ValueError: they would not apply. ``on_missing`` is passed to :func:`benchmark_source`; a folder's
    images are checked later, by :meth:`GallerySource.without_unreadable` (only when an index is built).
    """
    from ...data.imagefolder import is_image_folder

    path = Path(images)
    captioned = is_image_folder(path) or any(path.glob("*.parquet")) or any(path.glob("data/*.parquet"))
    if path.is_dir() and not captioned:
        if split is not None or languages is not None:
            raise ValueError(
                f"--split and --languages apply to captioned images, but {images} is a folder of images without "
                "captions (no metadata.jsonl or metadata.csv): leave them out, or add a metadata file with the "
                "captions (see modeling_ccr.data.imagefolder)"
            )
        return folder_source(path)
    split = split if split is not None else _default_split(images)
    return benchmark_source(images, split=split, languages=languages, data_dir=data_dir, image_dir=image_dir,
                            on_missing=on_missing)


def skipped_summary(source: GallerySource, shown: int = 5) -> str:
    """One line: how many images ``--on-missing drop`` left out and the first ``shown`` of them, with why."""
    total = len(source) + source.num_skipped
    more = source.num_skipped - min(shown, len(source.skipped))
    names = "; ".join(source.skipped[:shown]) + (f"; and {more} more" if more > 0 else "")
    return f"left out {source.num_skipped} of {total} images (--on-missing drop): {names}"
