"""What the IGLUE benchmarks (github.com/e-bug/iglue, folder ``datasets/<name>``) share: one caption file
per split and language under ``<data_dir>/annotations/`` and the images under ``<image_dir>`` (default
``<data_dir>/images``). :class:`IglueAnnotations` opens such a folder; a benchmark's loader
(``wit.py``, ``xflickrco.py``) says where its files lie and how to read them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

from .schema import ImageDirs, as_image_dirs, order_languages


class IglueAnnotations(ABC):
    """An IGLUE benchmark folder: ``files`` maps (split, language) to its annotation file; ``languages``
    (package order) and ``splits`` (sorted) are those the files name.

    Subclasses set ``name``, ``iglue_folder`` (the folder under ``datasets/`` of the IGLUE clone),
    ``example_file`` (an annotation file's path under ``annotations/``, for messages) and
    :meth:`annotation_files`.
    """

    name: str
    iglue_folder: str
    example_file: str

    def __init__(self, data_dir: Path, image_dir: ImageDirs | None = None):
        self.annotations = data_dir / "annotations"
        if not self.annotations.is_dir():
            raise ValueError(
                f"{data_dir} has no annotations/ folder; pass data_dir=<iglue clone>/datasets/{self.iglue_folder} "
                f"(it holds annotations/{self.example_file})."
            )
        self.image_dirs = as_image_dirs(image_dir, data_dir / "images")
        self.files: dict[tuple[str, str], Path] = dict(self.annotation_files())
        self.languages = order_languages({lang for _, lang in self.files})
        self.splits = sorted({split for split, _ in self.files})

    @abstractmethod
    def annotation_files(self) -> Iterator[tuple[tuple[str, str], Path]]:
        """``((split, language), path)`` of every annotation file under ``self.annotations``."""

    def default_splits(self, languages: Sequence[str]) -> list[str]:
        """The splits with an annotation file in every selected language."""
        return [s for s in self.splits if all((s, lang) in self.files for lang in languages)]
