"""A folder of parquet files in the common schema, as written by ``datasets`` itself."""

from __future__ import annotations

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data.ccr_data_fixtures import CAPTIONS, color_index, image_bytes

from modeling_ccr.data import common_features, load_benchmark


def write_split(folder, name, indices, with_bytes=True, captions=None):
    """Writes <folder>/<name>: with datasets' own parquet writer (images as bytes), or the Arrow table of a
    ``datasets.Dataset`` with pyarrow (images as relative paths, which ``to_parquet`` would embed)."""
    features = common_features(["en", "de"], extra=datasets.Features({"source": datasets.Value("string")}))
    rows = {"id": [], "image": [], "captions": [], "source": []}
    for i in indices:
        if with_bytes:
            image = {"bytes": image_bytes(i, "PNG"), "path": f"{i}.png"}
        else:
            (folder / "pics").mkdir(parents=True, exist_ok=True)
            (folder / "pics" / f"{i}.png").write_bytes(image_bytes(i, "PNG"))
            image = {"bytes": None, "path": f"pics/{i}.png"}
        rows["id"].append(f"img{i}")
        rows["image"].append(image)
        rows["captions"].append(
            captions(i) if captions else {"en": CAPTIONS["en"][i], "de": CAPTIONS["de"][i]}
        )
        rows["source"].append("fixture")
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    dataset = datasets.Dataset.from_dict(rows, features=features)
    if with_bytes:
        dataset.to_parquet(str(folder / name))
    else:
        pq.write_table(dataset.data.table, folder / name)


def test_hub_layout_with_bytes_and_path_images_and_extra_columns(tmp_path):
    write_split(tmp_path, "data/train-00000-of-00001.parquet", [0, 1, 2])
    write_split(tmp_path, "data/test-00000-of-00001.parquet", [3, 4], with_bytes=False)
    data = load_benchmark(str(tmp_path))
    assert list(data) == ["train", "test"]
    assert data["test"]["source"] == ["fixture", "fixture"]
    for split in data.values():
        for row in split:
            i = color_index(row["image"])
            assert row["id"] == f"img{i}"
            assert row["captions"] == {"en": CAPTIONS["en"][i], "de": CAPTIONS["de"][i]}


def test_an_image_path_that_leads_out_of_the_folder_is_refused_naming_the_row(tmp_path):
    folder = tmp_path / "set"
    outside = tmp_path / "outside.png"  # a real image beside the data folder
    outside.write_bytes(image_bytes(5, "PNG"))
    write_split(folder, "test.parquet", [0, 1], with_bytes=False)
    table = pq.read_table(folder / "test.parquet")
    images = table.column("image").to_pylist()
    images[1]["path"] = str(outside)
    column = table.schema.get_field_index("image")
    pq.write_table(table.set_column(column, "image", pa.array(images, table.schema.field(column).type)),
                   folder / "test.parquet")
    with pytest.raises(ValueError, match=(
        rf"instance 'img1' \({folder / 'test.parquet'} row 1\) names the image '{outside}', which leads out of the "
        "data folder"
    )):
        load_benchmark(folder, split="test")


def test_two_rows_with_one_id_are_refused_naming_both_rows(tmp_path):
    write_split(tmp_path, "test.parquet", [0, 1, 2])
    table = pq.read_table(tmp_path / "test.parquet")
    ids = table.column("id").to_pylist()
    ids[2] = ids[0]
    pq.write_table(table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids)), tmp_path / "test.parquet")
    path = tmp_path / "test.parquet"
    with pytest.raises(ValueError, match=rf"id 'img0' names two instances, {path} row 0 and {path} row 2; give every"):
        load_benchmark(tmp_path, split="test")


def test_null_caption_follows_the_policy(tmp_path):
    write_split(
        tmp_path,
        "test.parquet",
        [0, 1, 2],
        captions=lambda i: {"en": CAPTIONS["en"][i], "de": None if i == 1 else CAPTIONS["de"][i]},
    )
    with pytest.raises(ValueError, match=r"'img1' \(.*test\.parquet row 1\) has no caption in 'de'"):
        load_benchmark(tmp_path, split="test")
    test, report = load_benchmark(tmp_path, split="test", on_missing="drop", return_report=True)
    assert test["id"] == ["img0", "img2"] and report.num_dropped == 1
    assert load_benchmark(tmp_path, split="test", languages=["en"]).num_rows == 3


def test_files_outside_the_common_schema_are_refused(tmp_path):
    datasets.Dataset.from_dict({"id": ["a"], "image": [None], "text": ["x"]}).to_parquet(
        str(tmp_path / "test.parquet")
    )
    with pytest.raises(ValueError, match=r"test\.parquet has no 'captions' column"):
        load_benchmark(tmp_path)
    with pytest.raises(ValueError, match="neither a benchmark name"):
        load_benchmark(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="pass data_dir"):
        load_benchmark("multi30k")
