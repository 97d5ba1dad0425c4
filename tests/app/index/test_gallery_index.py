"""Gallery indexes on a tiny random model: exact search against brute force, resuming an interrupted
build, detecting a changed model or folder, refusing to replace what is not ours, the CLI, torchrun."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_ccr.app.cli import main as ccr
from modeling_ccr.app.index import GalleryIndex, build_index, folder_source
from modeling_ccr.app.index.search import encode_images, encode_queries, search_text
from modeling_ccr.app.index.session import load_model, open_index, text_to_image_rows
from modeling_ccr.testing import save_tiny_model, tiny_ccr_model, tiny_ccr_processor
from modeling_ccr.testing_processes import launcher_command, run_command

REPO = Path(__file__).resolve().parents[3]


def write_images(folder: Path, count: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(count):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(sub / f"img{i:02d}.png")
    return folder


@pytest.fixture()
def model_dir(tmp_path):
    return save_tiny_model(tmp_path / "model")


@pytest.fixture()
def images(tmp_path):
    return write_images(tmp_path / "photos", 12)


def build(model_dir, images, output, **options):
    model, processor = load_model(model_dir)
    return build_index(model, processor, folder_source(images), output, model_dir=model_dir, progress=False, **options)


def test_exact_search_equals_brute_force_matmul(model_dir, images, tmp_path):
    result = build(model_dir, images, tmp_path / "index", batch_size=5)
    assert result.status == "built" and result.count == 12
    index = GalleryIndex(tmp_path / "index")
    model, processor = load_model(model_dir)
    files = sorted(str(path) for path in images.rglob("*.png"))
    assert [str(index.image_path(i)) for i in range(len(index))] == files
    reference = encode_images(model, processor, files)  # embedded independently, one batch
    torch.testing.assert_close(index.image_embeds, reference, atol=1e-5, rtol=1e-4)
    queries = encode_queries(model, processor, ["red square", "a dog", "zebra crossing"])
    scores, indices = index.search(queries, 5)
    brute = queries @ reference.T
    expected_scores, expected_indices = brute.topk(5, dim=1)
    assert torch.equal(indices, expected_indices)
    torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("index_type", ["ivf", "hnsw"])
def test_approximate_index_types_search_the_same_embeddings(model_dir, images, tmp_path, index_type):
    build(model_dir, images, tmp_path / index_type, index_type=index_type)
    index = GalleryIndex(tmp_path / index_type)
    assert index.manifest["index"]["type"] == index_type
    scores, indices = index.search(index.image_embeds, 1)  # each image finds itself first
    assert torch.equal(indices[:, 0], torch.arange(len(index)))
    torch.testing.assert_close(scores[:, 0], torch.ones(len(index)), atol=1e-4, rtol=0)


def interrupt_image_tokens(model, on_batch: int) -> list[int]:
    """Make ``model.get_image_tokens`` raise KeyboardInterrupt on its ``on_batch``-th call (1-based), once;
    returns the list of the batch sizes it is called with (clear it to count again)."""
    calls = []
    real = model.get_image_tokens

    def counted(pixel_values):
        calls.append(pixel_values.shape[0])
        if len(calls) == on_batch and not getattr(counted, "interrupted", False):
            counted.interrupted = True
            raise KeyboardInterrupt
        return real(pixel_values)

    model.get_image_tokens = counted
    return calls


@pytest.mark.parametrize("keep_image_tokens", [False, True], ids=["embeddings", "with image tokens"])
def test_interrupted_build_resumes_from_the_saved_chunks(model_dir, images, tmp_path, keep_image_tokens):
    model, processor = load_model(model_dir)
    calls = interrupt_image_tokens(model, on_batch=3)
    output = tmp_path / "index"

    def build_here(folder):
        return build_index(model, processor, folder_source(images), folder, model_dir=model_dir, batch_size=4,
                           chunk_images=4, keep_image_tokens=keep_image_tokens, progress=False)

    with pytest.raises(KeyboardInterrupt):
        build_here(output)
    work = tmp_path / ".index.partial"
    assert not output.exists()
    assert sorted(path.name for path in work.glob("chunk-*.npz")) == ["chunk-000000.npz", "chunk-000001.npz"]
    with np.load(work / "chunk-000000.npz") as chunk:
        assert ("image_tokens" in chunk) == keep_image_tokens
    calls.clear()
    result = build_here(output)
    assert (result.status, result.resumed, result.embedded, calls) == ("built", 8, 4, [4])
    assert not work.exists()
    fresh = build_here(tmp_path / "fresh")
    assert fresh.embedded == 12
    resumed, fresh = GalleryIndex(output), GalleryIndex(tmp_path / "fresh")
    torch.testing.assert_close(resumed.image_embeds, fresh.image_embeds)
    if keep_image_tokens:  # the same batches computed: the same float16 values, in the images' order
        assert resumed.image_tokens.shape[0] == 12
        np.testing.assert_array_equal(resumed.image_tokens, fresh.image_tokens)
    else:
        assert resumed.image_tokens is None and not (output / "image_tokens.npy").exists()


def test_chunks_without_image_tokens_are_not_resumed_by_a_build_that_keeps_them(model_dir, images, tmp_path, caplog):
    model, processor = load_model(model_dir)
    interrupt_image_tokens(model, on_batch=2)
    output = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        build_index(model, processor, folder_source(images), output, model_dir=model_dir, batch_size=4,
                    chunk_images=4, progress=False)
    assert len(list((tmp_path / ".index.partial").glob("chunk-*.npz"))) == 1
    result = build_index(model, processor, folder_source(images), output, model_dir=model_dir, batch_size=4,
                         chunk_images=4, keep_image_tokens=True, progress=False)
    assert (result.resumed, result.embedded) == (0, 12)
    assert any("removed 1 chunk(s) of an interrupted build" in record.getMessage() for record in caplog.records)
    assert GalleryIndex(output).image_tokens.shape[0] == 12


def test_changed_model_or_folder_is_detected_and_rebuilt(model_dir, images, tmp_path):
    output = tmp_path / "index"
    build(model_dir, images, output)
    before = GalleryIndex(output)
    assert build(model_dir, images, output).status == "current"
    save_tiny_model(model_dir, seed=1)  # retrained in place: same folder, other weights
    with pytest.raises(ValueError, match="changed since index"):
        open_index(output)
    again = build(model_dir, images, output)
    assert (again.status, again.embedded) == ("rebuilt", 12)
    after = GalleryIndex(output)
    assert after.model_fingerprint != before.model_fingerprint
    assert not torch.allclose(after.image_embeds, before.image_embeds)
    open_index(output)  # current again
    write_images(tmp_path / "extra", 1, seed=5)
    os.replace(tmp_path / "extra" / "b" / "img00.png", images / "new.png")
    assert build(model_dir, images, output).status == "rebuilt"
    assert len(GalleryIndex(output)) == 13


def test_index_of_another_model_needs_overwrite_and_foreign_folders_are_refused(model_dir, images, tmp_path):
    output = tmp_path / "index"
    build(model_dir, images, output)
    other = save_tiny_model(tmp_path / "other", seed=2)
    with pytest.raises(ValueError, match="pass --overwrite"):
        build(other, images, output)
    assert build(other, images, output, overwrite=True).status == "rebuilt"
    assert GalleryIndex(output).manifest["model_dir"] == str(other.resolve())
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a gallery index"):
        build(model_dir, images, user, overwrite=True)
    assert (user / "notes.txt").read_text() == "keep me" and sorted(os.listdir(user)) == ["notes.txt"]


def test_cli_index_and_search(model_dir, tmp_path, capsys):
    output = tmp_path / "emoji-index"
    assert ccr(["index", str(model_dir), "cldr-emoji", "--languages", "en,de,ja", "--output", str(output),
                "--no-progress", "--chunk-images", "100"]) == 0
    assert "built: 300 images (flat)" in capsys.readouterr().out
    manifest = json.loads((output / "gallery.json").read_text())
    assert manifest["languages"] == ["en", "de", "ja"] and manifest["items"][0]["captions"]["de"]
    assert ccr(["search", str(output), "rotes Herz", "--lang", "de", "--k", "3", "--rerank", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(Path(line.split()[3]).is_file() for line in lines)
    assert ccr(["search", str(output), "x", "--lang", "xx"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "ccr search: error: Unknown language code 'xx': use one of en, de, ja."
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "a.txt").write_text("mine")
    assert ccr(["index", str(model_dir), "cldr-emoji", "--output", str(tmp_path / "taken"), "--no-progress"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_torchrun_build_equals_single_process(model_dir, images, tmp_path):
    command = launcher_command("torchrun", ["-m", "modeling_ccr.app.cli", "index", str(model_dir), str(images),
                                            "--output", str(tmp_path / "ddp"), "--chunk-images", "3", "--no-progress",
                                            "--keep-image-tokens"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = run_command(command, timeout_s=240, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    build(model_dir, images, tmp_path / "single", keep_image_tokens=True)
    distributed, single = GalleryIndex(tmp_path / "ddp"), GalleryIndex(tmp_path / "single")
    assert [item["id"] for item in distributed.items] == [item["id"] for item in single.items]
    torch.testing.assert_close(distributed.image_embeds, single.image_embeds, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(distributed.image_tokens.astype(np.float32),  # gathered in rank order
                               single.image_tokens.astype(np.float32), atol=1e-5, rtol=2**-10)


def test_search_reranks_as_the_models_saved_choice_says(model_dir, images, tmp_path):
    """Without a re-rank count, the top ``k_test`` of the model's saved "combine" choice are scored
    similarity + weight * ITM logit (each logit computed here pair by pair)."""
    config = json.loads((model_dir / "config.json").read_text())
    config["reranking"] = {"mode": "combine", "k_test": 4, "rerank_weight": 0.5}
    (model_dir / "config.json").write_text(json.dumps(config))
    build(model_dir, images, tmp_path / "index")
    index, model, processor = open_index(tmp_path / "index")
    rows = text_to_image_rows("red square", index, model, processor, k=6)
    assert [row["reranked"] for row in rows] == [True] * 4 + [False] * 2
    text = processor(text=["red square"], return_tensors="pt")
    for row in rows[:4]:
        pixels = processor(images=[row["path"]], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            logit = model.itm_logits(model.get_image_tokens(pixels), text["input_ids"], text["attention_mask"])[0, 1]
        assert row["score"] == pytest.approx(row["similarity"] + 0.5 * float(logit), abs=1e-4)
    assert [row["score"] for row in rows[:4]] == sorted((row["score"] for row in rows[:4]), reverse=True)
    plain = text_to_image_rows("red square", index, model, processor, k=6, rerank=0)
    assert not any(row["reranked"] for row in plain)


@pytest.mark.parametrize("residual", [False, True], ids=["paper head", "residual head"])
def test_stored_image_tokens_round_trip_and_rerank_as_encoding_the_images_again(images, tmp_path, residual):
    """An index that keeps the image tokens re-ranks from them as an index without them does from the images.

    Tolerances: float16 keeps 11 significant bits, so a stored token is within 2**-11 (relative) of the
    computed one; 2**-10 leaves room for the batches' float32 rounding. The re-ranking logits move by far
    less than the tokens for the paper head; a residual head adds 10 x the cosine of the embeddings
    projected from the tokens, which moves by at most about 2 x 2**-11, so 1e-2 bounds both. Ranks must agree
    wherever the re-encoded scores differ by more than twice that (closer ones may swap)."""
    model_dir = tmp_path / "model"
    model = tiny_ccr_model(seed=0, itm_residual=residual)
    with torch.no_grad():  # the MLP of the head counts (untrained, a residual head's last layer is zero)
        torch.nn.init.normal_(model.itm_head.classifier.weight, std=0.3)
    model.save_pretrained(model_dir)
    tiny_ccr_processor().save_pretrained(model_dir)
    build(model_dir, images, tmp_path / "plain")
    build(model_dir, images, tmp_path / "kept", keep_image_tokens=True, batch_size=5)
    plain, kept = GalleryIndex(tmp_path / "plain"), GalleryIndex(tmp_path / "kept")
    assert plain.image_tokens is None and plain.stored_image_tokens([0]) is None
    assert plain.manifest["image_tokens"] is None and not (plain.folder / "image_tokens.npy").exists()
    model, processor = load_model(model_dir)
    files = [str(kept.image_path(i)) for i in range(len(kept))]
    with torch.no_grad():
        computed = model.get_image_tokens(processor(images=files, return_tensors="pt")["pixel_values"])
    assert kept.manifest["image_tokens"] == {"dtype": "float16", "shape": list(computed.shape)}
    stored = kept.stored_image_tokens([3, 0, 11])
    assert stored.dtype == torch.float16
    torch.testing.assert_close(stored.float(), computed[[3, 0, 11]], rtol=2**-10, atol=2**-24)
    tolerance = 1e-2
    for query in ["red square", "a dog", "zebra crossing", "猫", "ein Haus am See"]:
        from_tokens = search_text(model, processor, kept, query, k=12, rerank=12)
        from_images = search_text(model, processor, plain, query, k=12, rerank=12)
        assert all(hit.reranked for hit in from_tokens + from_images)
        scores = {hit.index: hit.score for hit in from_tokens}
        assert sorted(scores) == list(range(12))
        for i, first in enumerate(from_images):
            assert scores[first.index] == pytest.approx(first.score, abs=tolerance)
            for second in from_images[i + 1:]:
                if first.score - second.score > 2 * tolerance:
                    assert scores[first.index] > scores[second.index]


def test_keep_image_tokens_is_part_of_the_index_and_a_damaged_tokens_file_is_refused_then_rebuilt(
        model_dir, images, tmp_path, capsys):
    output = tmp_path / "index"
    tokens_file = output / "image_tokens.npy"

    def ccr_index(*options):
        code = ccr(["index", str(model_dir), str(images), "--output", str(output), "--no-progress", *options])
        return code, capsys.readouterr().out

    assert ccr_index()[0] == 0 and GalleryIndex(output).image_tokens is None
    assert ccr_index("--keep-image-tokens") == (0, f"index {output} rebuilt: 12 images (flat), image tokens kept\n")
    assert "is up to date" in ccr_index("--keep-image-tokens")[1]
    assert ccr(["search", str(output), "red square", "--k", "3", "--rerank", "5", "--json"]) == 0
    assert [result["reranked"] for result in json.loads(capsys.readouterr().out)["results"]] == [True] * 3
    tokens_file.write_bytes(tokens_file.read_bytes()[:1000])  # cut short, as a failed copy leaves it
    with pytest.raises(ValueError, match=r"the image tokens of index .* do not read .*--keep-image-tokens'$"):
        GalleryIndex(output)
    assert "rebuilt" in ccr_index("--keep-image-tokens")[1]
    assert GalleryIndex(output).image_tokens.shape[0] == 12
    assert "rebuilt" in ccr_index()[1]  # without the option: rebuilt without them, the old file not carried over
    assert GalleryIndex(output).image_tokens is None and not tokens_file.exists()


def test_an_untrained_model_is_announced_once_by_index_search_and_the_demo_page(model_dir, images, tmp_path, capsys):
    from modeling_ccr.app.demo.app import describe_model

    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "untrained": True}))
    assert ccr(["index", str(model_dir), str(images), "--output", str(tmp_path / "index"), "--no-progress"]) == 0
    assert ccr(["search", str(tmp_path / "index"), "a red square", "--k", "2"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert [line.split(":")[0] for line in warnings] == ["ccr index", "ccr search"]
    assert all(f"{model_dir} is an untrained model" in line and "at chance level" in line for line in warnings)
    model, _ = load_model(model_dir)
    assert "untrained" in describe_model(model) and str(model_dir) in describe_model(model)
    (model_dir / "config.json").write_text(json.dumps({**config, "untrained": False}))
    assert describe_model(load_model(model_dir)[0]).endswith(", trained")


def test_search_takes_several_queries_and_prints_json(model_dir, images, tmp_path, capsys):
    build(model_dir, images, tmp_path / "index")
    queries = ["a red square", "blaues Quadrat"]
    assert ccr(["search", str(tmp_path / "index"), *queries, "--k", "3", "--rerank", "0", "--json"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [answer["query"] for answer in answers] == queries
    index, model, processor = open_index(tmp_path / "index")
    for answer in answers:  # each query's results are those of a search for it alone
        alone = text_to_image_rows(answer["query"], index, model, processor, k=3, rerank=0)
        assert [result["rank"] for result in answer["results"]] == [1, 2, 3]
        assert [result["path"] for result in answer["results"]] == [row["path"] for row in alone]
        assert [result["score"] for result in answer["results"]] == pytest.approx([row["score"] for row in alone])
    assert ccr(["search", str(tmp_path / "index"), *queries, "--k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("query: ")] == [f"query: {query}" for query in queries]
    assert len(lines) == 2 + 2 * 2
    assert ccr(["search", str(tmp_path / "index"), "x", "--lang", "de"]) == 2  # an image folder has no captions
    assert capsys.readouterr().err.strip().endswith("holds no captions (an index of an image folder): leave --lang out")
