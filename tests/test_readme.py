"""Every ```python block of the README runs as written, in a temporary working directory holding real files
at the exact relative paths it names: a tiny model where the examples load the main job's model from, tiny
Swin / XLM-R towers where the paper-scale example loads its backbones from, and small copies of each
benchmark in its published layout where the dataset examples point the loaders (written by the loader
tests' own fixture writers)."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import torch
from data import test_data_cclm as cclm_fixture  # the loader tests' fixture writers (tests/ is on the path)
from data import test_data_coco_multilingual as coco_fixture
from data import test_data_imagefolder as imagefolder_fixture
from data import test_data_multi30k as multi30k_fixture
from data import test_data_wit as wit_fixture
from data import test_data_xflickrco as xflickrco_fixture
from data.ccr_data_fixtures import CAPTIONS, color_index
from transformers import AutoConfig, AutoModel

from modeling_ccr.testing import (
    save_tiny_model,
    tiny_image_processor,
    tiny_text_config,
    tiny_tokenizer,
    tiny_vision_config,
)

README = Path(__file__).resolve().parents[1] / "README.md"
MODEL_PATH = "runs/main/train/model"  # where the examples load the main job's model from
SWIN_PATH, XLMR_PATH = "path/to/swin-base-in22k", "path/to/xlm-roberta-large"  # the paper-scale example's
XFLICKRCO_LANGS = ("en", "de", "ja", "zh")  # the languages the second dataset example selects

# Every ```python block of the README in order: the heading it stands under and the test that runs it. A new
# block fails test_every_readme_python_block_is_run until it is listed here with a test.
BLOCKS = (
    ("## Using a model", "test_using_a_model_and_training_examples_run_in_order"),
    ("### Paper-scale backbones", "test_paper_scale_example_builds_the_model_from_towers_at_its_paths"),
    ("## Training", "test_using_a_model_and_training_examples_run_in_order"),
    ("## Datasets", "test_dataset_examples_load_every_benchmark_from_its_published_layout"),
    ("### Pointing the loaders at a local copy of each benchmark",
     "test_dataset_examples_load_every_benchmark_from_its_published_layout"),
)


def readme_python_blocks() -> list[tuple[str, int, str]]:
    """(heading above it, line number of its first code line, code) of every ```python block, in order."""
    blocks, heading, code, start = [], None, None, 0
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1):
        if code is not None:
            if line.startswith("```"):
                blocks.append((heading, start, "\n".join(code) + "\n"))
                code = None
            else:
                code.append(line)
        elif line.startswith("```python"):
            code, start = [], number + 1
        elif line.startswith("#"):
            heading = line.strip()
    return blocks


def block(index: int) -> tuple[str, int]:
    """The code of README python block ``index`` (0-based) and its first line, checked to stand under the
    heading ``BLOCKS`` gives it."""
    heading, start, code = readme_python_blocks()[index]
    assert heading == BLOCKS[index][0], f"README python block {index + 1} now stands under {heading!r}"
    return code, start


def run(code: str, start: int, namespace: dict) -> list[tuple[str, object]]:
    """Runs a README block statement by statement in ``namespace`` (tracebacks name README.md and its line)
    and returns (source, value) of each statement that is a bare expression, which a reader sees printed."""
    tree = ast.parse(code, filename=str(README))
    ast.increment_lineno(tree, start - 1)
    lines = code.splitlines()
    values = []
    for statement in tree.body:
        source = "\n".join(lines[statement.lineno - start : statement.end_lineno - start + 1])
        if isinstance(statement, ast.Expr):
            expression = compile(ast.Expression(statement.value), str(README), "eval")
            values.append((source, eval(expression, namespace)))  # noqa: S307 - the README's own code
        else:
            module = compile(ast.Module([statement], type_ignores=[]), str(README), "exec")
            exec(module, namespace)  # noqa: S102 - the README's own code
    return values


def comment(code: str, marker: str) -> str:
    """The comment on the line of ``code`` holding ``marker``."""
    (line,) = [line for line in code.splitlines() if marker in line]
    return line.split("  #", 1)[1].strip()


def test_every_readme_python_block_is_run():
    headings = [heading for heading, _, _ in readme_python_blocks()]
    assert headings == [heading for heading, _ in BLOCKS], (
        "the README's ```python blocks changed: list each in BLOCKS with the test that runs it"
    )
    assert all(callable(globals().get(test)) for _, test in BLOCKS)


def test_using_a_model_and_training_examples_run_in_order(tmp_path, monkeypatch):
    """The first example of "Using a model" gives the names the "Training" example goes on with, as a reader
    runs them."""
    save_tiny_model(tmp_path / MODEL_PATH)
    monkeypatch.chdir(tmp_path)
    (using, using_start), (training, training_start) = block(0), block(2)
    assert MODEL_PATH in using and "CCRForPreTraining" in training
    namespace: dict = {}
    run(using, using_start, namespace)
    run(training, training_start, namespace)
    assert namespace["scores"].shape == (2, 4)  # 2 images x their 2 captions each, image-major
    assert namespace["loss"].ndim == 0 and bool(namespace["loss"].isfinite())
    assert namespace["output"].loss.ndim == 0 and bool(namespace["output"].loss.isfinite())


def save_towers(root: Path) -> torch.nn.Module:
    """A tiny Swin and a tiny 24-layer XLM-R (hidden 32) saved with their processors at the paper-scale
    example's paths, as a user would have them; returns the XLM-R tower."""
    torch.manual_seed(0)
    swin = AutoModel.from_config(AutoConfig.for_model(**tiny_vision_config("swin")))
    swin.save_pretrained(root / SWIN_PATH)
    tiny_image_processor().save_pretrained(root / SWIN_PATH)
    tokenizer = tiny_tokenizer()
    xlmr = AutoModel.from_config(AutoConfig.for_model(**tiny_text_config(len(tokenizer), num_layers=24)))
    xlmr.save_pretrained(root / XLMR_PATH)
    tokenizer.save_pretrained(root / XLMR_PATH)
    return xlmr


def test_paper_scale_example_builds_the_model_from_towers_at_its_paths(tmp_path, monkeypatch):
    """The example is self-contained (it imports what it uses): it runs in a namespace of its own."""
    xlmr = save_towers(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, start = block(1)
    assert SWIN_PATH in code and XLMR_PATH in code
    namespace: dict = {}
    run(code, start, namespace)
    model, processor = namespace["model"], namespace["processor"]
    assert model.config.num_text_layers == 6 and model.config.num_fusion_layers == 6  # odd layers of 24
    assert model.config.projection_dim == 256 and model.config.vision_config.model_type == "swin"
    for target, source in ((0, 1), (5, 11)):  # text layers 0..5 are the tower's layers 1, 3, ..., 11
        assert torch.equal(model.text_model.encoder.layer[target].attention.self.query.weight,
                           xlmr.encoder.layer[source].attention.self.query.weight)
    assert torch.equal(model.fusion.layer[5].output.dense.weight, xlmr.encoder.layer[23].output.dense.weight)
    from PIL import Image

    batch = processor(images=[Image.new("RGB", (50, 40), (9, 99, 199))], captions=[["a cat", "eine Katze"]])
    with torch.no_grad():
        assert model.eval()(**batch).logits_per_image.shape == (1, 2)


def move(source: Path, target: Path) -> None:
    """Moves the files under ``source`` to the same relative paths under ``target`` (merging folders)."""
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        path.rename(destination)
    shutil.rmtree(source)


def write_benchmarks(root: Path) -> None:
    """Small copies of every benchmark the dataset examples load, each in its published layout at the
    examples' data_dir, with its images moved to the examples' image_dir (so the default
    ``<data_dir>/images`` finds nothing)."""
    xflickrco = xflickrco_fixture.write_fixture(root / "iglue/datasets/xFlickrCO", langs=XFLICKRCO_LANGS)
    shutil.copytree(xflickrco / "images", root / "images")  # the first example's image_dir
    for name in (xflickrco / "images").iterdir():  # the second's: Flickr30K and COCO val2014 folders
        folder = root / ("coco/val2014" if name.name.startswith("COCO_val2014_") else "flickr30k-images")
        folder.mkdir(parents=True, exist_ok=True)
        name.rename(folder / name.name)
    shutil.rmtree(xflickrco / "images")
    multi30k = multi30k_fixture.write_fixture(root / "multi30k-dataset")  # split test_2016_flickr
    move(multi30k / "flickr30k-images", root / "flickr30k/flickr30k-images")
    coco = root / "coco-captions"
    coco.mkdir()
    coco_fixture.write_fixture(coco)
    move(coco / "images", root / "coco")  # the COCO root: train2014/ and val2014/
    wit = wit_fixture.write_fixture(root / "iglue/datasets/wit")
    move(wit / "images", root / "wit_test")
    (root / "pretrain_data").mkdir()
    cclm_fixture.write_corpus(root / "pretrain_data").rename(root / "pretrain_data/cc3m-mm-data-all")
    imagefolder_fixture.write_image_folder(root / "my_photos", "csv")  # my_photos/train/metadata.csv


def loaded_images(dataset, languages) -> list[int]:
    """Which fixture image each row holds (by its pixels), checking its captions are that image's."""
    seen = []
    for row in dataset:
        i = color_index(row["image"])
        assert row["captions"] == {lang: CAPTIONS[lang][i] for lang in languages}, (row["id"], i)
        seen.append(i)
    return seen


def test_dataset_examples_load_every_benchmark_from_its_published_layout(tmp_path, monkeypatch):
    """The two examples of the data section run in one namespace (the second uses the first's import)."""
    write_benchmarks(tmp_path)
    monkeypatch.chdir(tmp_path)
    (first, first_start), (second, second_start) = block(3), block(4)
    namespace: dict = {}
    printed = run(first, first_start, namespace)
    sizes = {split: int(n) for split, n in re.findall(r"(\w+) (\d+)", comment(first, 'load_benchmark("cldr-emoji")'))}
    assert {split: data.num_rows for split, data in namespace["emoji"].items()} == sizes
    assert sizes == {"train": 1085, "validation": 200, "test": 300}
    assert namespace["test"].num_rows == 300
    ((source, captions),) = printed
    assert source.startswith('test[0]["captions"]')
    assert captions == ast.literal_eval(comment(first, 'test[0]["captions"]'))
    order = [lang for lang in namespace["DEFAULT_LANGUAGES"] if lang in XFLICKRCO_LANGS]  # package order
    xfc = namespace["xfc"]
    assert list(xfc.features["captions"]) == order
    assert loaded_images(xfc, order) == [0, 1, 2, 3]

    printed = run(second, second_start, namespace)
    assert [source.split('"')[1] for source, _ in printed] == [
        "multi30k", "xflickrco", "coco-multilingual", "coco-multilingual", "wit"
    ]
    multi30k, xflickrco, coco_test, coco_cn_test, wit = (value for _, value in printed)
    assert loaded_images(multi30k, ("en", "de", "fr", "cs")) == [0, 1, 2, 3]
    assert list(multi30k.features["captions"]) == ["en", "de", "fr", "cs"]
    assert list(xflickrco.features["captions"]) == list(XFLICKRCO_LANGS)
    assert loaded_images(xflickrco, XFLICKRCO_LANGS) == [0, 1, 2, 3]  # Flickr and COCO images, two folders
    assert loaded_images(coco_test, ["en"]) == [0, 1]  # Karpathy test: the two val2014 images
    assert loaded_images(coco_cn_test, ["zh"]) == [2, 3]  # COCO-CN test: the two train2014 images
    assert loaded_images(wit, ["ja"]) == [0, 1, 2]  # the Japanese test set's own images
    assert sorted(loaded_images(namespace["corpus"], cclm_fixture.LANGS)) == [0, 1, 2, 3, 4]  # streamed
    mine = namespace["mine"]
    assert list(mine.features["captions"]) == ["en", "de"]
    assert mine["id"] == [f"image-{i}" for i in imagefolder_fixture.SPLITS["train"]]
    assert loaded_images(mine, ["en", "de"]) == imagefolder_fixture.SPLITS["train"]
