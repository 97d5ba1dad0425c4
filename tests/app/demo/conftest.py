"""A tiny random model and a tiny gallery of 24 real emoji (captions in five languages, three scripts)."""

from __future__ import annotations

import pytest
from demo_gallery import GALLERY_LANGUAGES, GALLERY_SIZE
from PIL import Image

from modeling_ccr.app.index import GalleryIndex, benchmark_source, build_index
from modeling_ccr.app.index.session import load_model
from modeling_ccr.data import load_benchmark
from modeling_ccr.testing import save_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def loaded(tiny_model_dir):
    """(model, processor) of the tiny model."""
    return load_model(tiny_model_dir)


@pytest.fixture(scope="session")
def gallery(tmp_path_factory, tiny_model_dir, loaded) -> GalleryIndex:
    folder = tmp_path_factory.mktemp("emoji")
    subset = load_benchmark("cldr-emoji", split="test", languages=GALLERY_LANGUAGES).select(range(GALLERY_SIZE))
    subset.to_parquet(str(folder / "data" / "test.parquet"))
    model, processor = loaded
    source = benchmark_source(str(folder / "data"), split="test")
    build_index(model, processor, source, folder / "index", model_dir=tiny_model_dir, progress=False)
    return GalleryIndex(folder / "index")


@pytest.fixture(scope="session")
def huge_image(tmp_path_factory):
    """A 10,000 x 10,000 PNG (small on disk, 100 megapixels decoded)."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("L", (10_000, 10_000), 128).save(path)
    return path
