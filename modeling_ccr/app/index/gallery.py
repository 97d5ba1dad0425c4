"""A gallery index: a CCR model's image embeddings in a FAISS index, with metadata, built resumably.

Folder layout of an index (``ccr index ... --output INDEX``):
    gallery.json          format, the model's fingerprint, the source, the index type, ids, paths, captions,
                          and the images left out as unreadable (``skipped``: count and names; --on-missing drop)
    images.faiss          the FAISS index over the n L2-normalised image embeddings ``[n, D]`` (inner product)
    image_embeds.npy      the same embeddings, float32 ``[n, D]`` (exact reference, rebuilding other types)
    caption_embeds.npy    benchmarks only: caption embeddings ``[n*K, D]``, image-major (row j*K + l)
    image_tokens.npy      with ``keep_image_tokens`` (``ccr index --keep-image-tokens``, the demo's own galleries):
                          each image's tokens, the fusion encoder's input (``model.get_image_tokens``), float16
                          ``[n, P, Cv]`` (P x Cv x 2 bytes per image: 50 x 1280 x 2 = 128 kB for the default
                          model), so that search re-ranking reads them (memory-mapped) instead of decoding and
                          encoding the images again; the manifest records their shape, and an index whose
                          file is missing, cut short or of another shape is rebuilt by the next build and
                          refused by :class:`GalleryIndex`
    images/               benchmarks only: the images that the benchmark carries as bytes

The folder is published atomically (written beside it, then swapped in; files in it that are not the
index's, such as a user's notes, are kept when it is rebuilt: :func:`modeling_ccr.atomic_io.write_output`).
Work in progress lives in ``.<INDEX>.partial/``: one ``chunk-NNNNNN.npz`` per block of ``chunk_images`` images,
written atomically, so an interrupted build resumes from the last complete chunk (a chunk holds its images'
tokens when they are kept); the next build of the same index that cannot use them (the index is up to date,
or it is of another model or folder, or chunks without tokens for a build that keeps them) removes them,
saying so, and a build that fails before its first chunk leaves no work folder. The build holds the index's lock
(:func:`modeling_ccr.output_lock.output_lock`). Under ``torchrun`` / ``accelerate launch``
each process embeds a contiguous block of chunks (``DistributedContext.shard``); the embeddings are
gathered in rank order and process 0 writes the index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ...atomic_io import (
    OutputKind,
    atomic_write,
    check_output,
    holds_anything,
    remove_interrupted_staging,
    write_output,
)
from ...evaluation.distributed import DistributedContext
from ...evaluation.encode import check_finite_embeddings, encode_benchmark
from ...output_lock import output_lock
from .constants import DEFAULT_CHUNK_IMAGES, INDEX_TYPES
from .sources import GallerySource, write_benchmark_images

logger = logging.getLogger(__name__)

FORMAT = "ccr-gallery-index"
FORMAT_VERSION = 1
MANIFEST = "gallery.json"
FAISS_FILE = "images.faiss"
EMBEDS_FILE = "image_embeds.npy"
CAPTIONS_FILE = "caption_embeds.npy"
TOKENS_FILE = "image_tokens.npy"
TOKENS_DTYPE = np.float16
PROGRESS_FILE = "progress.json"


_FINGERPRINTS: dict[tuple, str] = {}  # this process's fingerprints, keyed by the files' paths, sizes and mtimes


def model_fingerprint(model_dir: str | os.PathLike) -> str:
    """SHA-256 over the name and bytes of every file at the top of a saved model folder (weights, configs,
    tokenizer): any retraining or re-export changes it. Within one process a folder whose files all keep
    their size and modification time is hashed once (a build checks the fingerprint twice; 0.5 s a time for
    the default model's 470 MB)."""
    folder = Path(model_dir)
    files = sorted(path for path in folder.iterdir() if path.is_file())
    if not files:
        raise ValueError(f"{model_dir} holds no files: pass a saved CCR model folder")
    key = tuple((str(path.resolve()), stat.st_size, stat.st_mtime_ns) for path in files for stat in [path.stat()])
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode("utf-8") + b"\0")
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        _FINGERPRINTS[key] = digest.hexdigest()
    return _FINGERPRINTS[key]


@dataclass
class BuildResult:
    """What :func:`build_index` did: ``status`` is "built", "rebuilt" or "current" (already up to date);
    ``embedded`` images were encoded by this process in this call, ``resumed`` came from saved chunks."""

    folder: Path
    status: str
    count: int
    embedded: int
    resumed: int


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _identity(model_dir, source: GallerySource, index_type: str, nlist: int | None) -> tuple[str, dict, dict]:
    """(model folder as stored, fingerprints, settings) of a build."""
    fingerprints = {"model": model_fingerprint(model_dir), "source": source.fingerprint}
    settings = {"source": source.description, "index": {"type": index_type, "nlist": nlist}}
    return str(Path(model_dir).resolve()), fingerprints, settings


def _is_gallery_index(folder: Path) -> bool:
    manifest = _read_json(folder / MANIFEST)
    return manifest is not None and manifest.get("format") == FORMAT


GALLERY_INDEX = OutputKind("a gallery index", _is_gallery_index,
                           (MANIFEST, FAISS_FILE, EMBEDS_FILE, CAPTIONS_FILE, TOKENS_FILE, "images/*"))


def _open_image_tokens(folder: Path, manifest: dict) -> np.ndarray | None:
    """The image tokens the index at ``folder`` keeps, memory-mapped read-only (float16 ``[n, P, Cv]``), or
    None when its manifest records none. Raises ValueError when the manifest records them but the file is
    missing, cut short, or of another dtype or shape than recorded."""
    recorded = manifest.get("image_tokens")
    if not recorded:
        return None
    path = folder / TOKENS_FILE
    try:
        tokens = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise ValueError(f"the image tokens of index {folder} do not read ({error})") from None
    if tokens.dtype != TOKENS_DTYPE or list(tokens.shape) != recorded["shape"]:
        raise ValueError(f"the image tokens of index {folder} are {tokens.dtype} {list(tokens.shape)}, but its "
                         f"manifest records float16 {recorded['shape']}")
    return tokens


def _image_tokens_as_asked(folder: Path, manifest: dict, keep_image_tokens: bool) -> bool:
    """Whether the index keeps image tokens, readable as its manifest records them, exactly when asked to."""
    try:
        return (_open_image_tokens(folder, manifest) is not None) == keep_image_tokens
    except ValueError:
        return False


def output_state(output: str | os.PathLike, model_dir: str | os.PathLike, source: GallerySource,
                 index_type: str = "flat", nlist: int | None = None, overwrite: bool = False,
                 keep_image_tokens: bool = False) -> str:
    """What a build would do at ``output``: "new", "current" (up to date) or "rebuild". An index is current
    when its model files, images and index settings are those asked for and it keeps (readable) image tokens
    exactly when ``keep_image_tokens`` asks for them.

    Raises ValueError when ``output`` holds anything but a gallery index, or (without ``overwrite``) an
    index of another model folder or image source.
    """
    output = Path(output)
    model_id, fingerprints, settings = _identity(model_dir, source, index_type, nlist)
    if not holds_anything(output):
        return "new"
    if not output.is_dir() or not _is_gallery_index(output):
        check_output(output, GALLERY_INDEX, overwrite)  # raises: not an index
    manifest = _read_json(output / MANIFEST)
    same_identity = manifest.get("model_dir") == model_id and manifest.get("source") == settings["source"]
    if (same_identity and manifest.get("fingerprints") == fingerprints and manifest.get("index") == settings["index"]
            and _image_tokens_as_asked(output, manifest, keep_image_tokens)):
        return "current"
    if same_identity or overwrite:
        return "rebuild"
    raise ValueError(
        f"{output} is an index of another model or image folder ({manifest.get('model_dir')}, "
        f"{manifest.get('source')}): pass --overwrite to replace it, or choose another --output"
    )


def indexed_count(output: str | os.PathLike) -> int:
    """How many images the built index at ``output`` holds (its manifest's count)."""
    return int(_read_json(Path(output) / MANIFEST)["count"])


def work_folder(output: str | os.PathLike) -> Path:
    """Where a build of the index at ``output`` keeps its resumable chunks: ``.<INDEX>.partial`` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}.partial")


def discard_interrupted_work(output: str | os.PathLike) -> None:
    """Remove what interrupted builds left beside ``output`` when the index there is up to date: staging
    folders (:func:`modeling_ccr.atomic_io.remove_interrupted_staging`) and the work folder, none of whose
    chunks can be used; one line for each. Only a work folder of ours (with its progress record) is
    removed. Call it holding the index's lock, so that no live build owns them."""
    remove_interrupted_staging(Path(output))
    work = work_folder(output)
    if _read_json(work / PROGRESS_FILE) is None:
        return
    chunks = len(list(work.glob("chunk-*.npz")))
    shutil.rmtree(work)
    logger.warning("removed %s: %d chunk(s) of an interrupted build, not needed as the index %s is up to date",
                   work, chunks, output)


def _prepare_work(work: Path, progress: dict, context: DistributedContext) -> None:
    """Create (or reset, when it belongs to another build) the resumable work folder."""
    if context.is_main:
        previous = _read_json(work / PROGRESS_FILE)
        if work.exists() and previous is None and any(work.iterdir()):
            raise ValueError(f"{work} exists and is not a gallery build folder: move it away and rerun")
        stale = list(work.glob("chunk-*.npz")) if previous is not None and previous != progress else []
        for chunk in stale:  # chunks of another model or folder: ours, stale
            chunk.unlink()
        if stale:
            logger.warning("removed %d chunk(s) of an interrupted build of another model, image folder or "
                           "image-token setting from %s", len(stale), work)
        work.mkdir(parents=True, exist_ok=True)
        (work / PROGRESS_FILE).write_text(json.dumps(progress, indent=1), encoding="utf-8")
    context.barrier()


@torch.inference_mode()
def _embed_chunk(model, processor, source: GallerySource, rows: range, batch_size: int, bar: tqdm,
                 keep_image_tokens: bool) -> dict:
    """Embeddings of ``rows``: ``image_embeds [len(rows), D]`` (+ ``caption_embeds [len(rows)*K, D]``; +
    ``image_tokens [len(rows), P, Cv]`` float16 with ``keep_image_tokens``)."""
    parts: dict[str, list[np.ndarray]] = {"image_embeds": [], "caption_embeds": [], "image_tokens": []}
    for start in range(rows.start, rows.stop, batch_size):
        batch = range(start, min(start + batch_size, rows.stop))
        if source.dataset is not None:
            encoded = encode_benchmark(model, processor, source.dataset, source.languages, rows=batch,
                                       batch_size=batch_size, keep_image_tokens=keep_image_tokens)
            embeds, tokens = encoded.image_embeds, encoded.image_tokens
            parts["caption_embeds"].append(encoded.text_embeds.numpy())
        else:
            pixels = processor(images=source.images(batch), return_tensors="pt")["pixel_values"]
            tokens = model.get_image_tokens(pixels.to(model.device, model.dtype))
            embeds = model.project_image_tokens(tokens).float().cpu()
        parts["image_embeds"].append(embeds.numpy())
        if keep_image_tokens:
            parts["image_tokens"].append(tokens.cpu().numpy().astype(TOKENS_DTYPE))
        bar.update(len(batch))
    return {name: np.concatenate(arrays) for name, arrays in parts.items() if arrays}


def _check_storable_tokens(tokens: np.ndarray, first_row: int) -> None:
    """Refuse image tokens ``[n, P, Cv]`` that float16 cannot hold (beyond +-65504 they became infinite),
    naming the first such image as number ``first_row + i``."""
    finite = np.isfinite(tokens).reshape(len(tokens), -1).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"the tokens of image {first_row + int(np.flatnonzero(~finite)[0])} exceed float16's range, in which "
            "the index keeps them: build the index without --keep-image-tokens (re-ranking then encodes the images)"
        )


def _save_chunk(path: Path, arrays: dict) -> None:
    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:  # a file object: np.savez would append ".npz" to a name
            np.savez(handle, **arrays)

    atomic_write(path, write)


def make_faiss_index(embeds: np.ndarray, index_type: str = "flat", nlist: int | None = None, hnsw_m: int = 32):
    """A FAISS inner-product index over ``embeds [n, D]`` (float32, L2-normalised: inner product = cosine).

    ``flat``: exact search (IndexFlatIP). ``ivf``: IndexIVFFlat with ``nlist`` clusters (default about
    sqrt(n)), trained on the embeddings, probing ``max(1, nlist // 8)`` of them. ``hnsw``: IndexHNSWFlat
    with ``hnsw_m`` links per node.
    """
    import faiss

    n, dim = embeds.shape
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type == "ivf":
        nlist = nlist or max(1, int(math.sqrt(n)))
        if not 1 <= nlist <= n:
            raise ValueError(f"--nlist must be in [1, {n}] (the number of images), got {nlist}")
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(embeds)
        index.nprobe = max(1, nlist // 8)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"unknown index type {index_type!r}: use one of {', '.join(INDEX_TYPES)}")
    index.add(embeds)
    return index


def build_index(
    model,
    processor,
    source: GallerySource,
    output: str | os.PathLike,
    *,
    model_dir: str | os.PathLike,
    index_type: str = "flat",
    nlist: int | None = None,
    batch_size: int = 32,
    chunk_images: int = DEFAULT_CHUNK_IMAGES,
    overwrite: bool = False,
    keep_image_tokens: bool = False,
    context: DistributedContext | None = None,
    progress: bool = True,
) -> BuildResult:
    """Embed ``source``'s images with ``model`` into a gallery index at ``output`` (layout: module docstring).

    ``model_dir`` is the saved folder ``model`` was loaded from: its fingerprint is stored and compared.
    An index at ``output`` built from the same model folder and source is kept when nothing changed
    ("current") and rebuilt when the model's files or the images changed; one of another model or
    source is replaced only with ``overwrite``; anything else at ``output`` is refused (ValueError).
    ``keep_image_tokens`` also stores every image's tokens (``image_tokens.npy``, module docstring; all of
    them are held in memory while the index is written); an index that keeps them when not asked to, or
    the reverse, is rebuilt. Every process of a distributed job calls this; all return the same result.
    """
    if index_type not in INDEX_TYPES:
        raise ValueError(f"unknown index type {index_type!r}: use one of {', '.join(INDEX_TYPES)}")
    if batch_size < 1 or chunk_images < 1:
        raise ValueError(f"batch_size and chunk_images must be >= 1, got {batch_size} and {chunk_images}")
    context = context or DistributedContext(device=model.device)
    output = Path(output)
    with output_lock(output) if context.is_main else nullcontext():
        state = output_state(output, model_dir, source, index_type, nlist, overwrite, keep_image_tokens)
        model_id, fingerprints, settings = _identity(model_dir, source, index_type, nlist)
        if state == "current":
            if context.is_main:
                discard_interrupted_work(output)
            return BuildResult(output, "current", len(source), 0, 0)
        work = work_folder(output)
        num_chunks = math.ceil(len(source) / chunk_images)
        if num_chunks < context.world_size:
            raise ValueError(
                f"{len(source)} images make {num_chunks} chunks of {chunk_images} for {context.world_size} "
                "processes: launch fewer processes or lower --chunk-images"
            )
        _prepare_work(work, {"fingerprints": fingerprints, "chunk_images": chunk_images, "count": len(source),
                             "image_tokens": keep_image_tokens}, context)
        try:
            parts, embedded, resumed = _embed_chunks(model, processor, source, work, context.shard(num_chunks),
                                                     chunk_images, batch_size, progress, keep_image_tokens)
        except BaseException:
            if context.is_main and not any(work.glob("chunk-*.npz")):
                shutil.rmtree(work, ignore_errors=True)  # nothing to resume from
            raise
        gathered = {
            name: context.gather_rows(torch.from_numpy(np.concatenate([part[name] for part in parts]))).numpy()
            for name in parts[0]
        }
        if context.is_main:
            _publish(output, source, gathered, model_id, fingerprints, settings, nlist)
            shutil.rmtree(work)
        context.barrier()
    return BuildResult(output, "built" if state == "new" else "rebuilt", len(source), embedded, resumed)


def _embed_chunks(model, processor, source: GallerySource, work: Path, chunks: range, chunk_images: int,
                  batch_size: int, progress: bool, keep_image_tokens: bool) -> tuple[list[dict], int, int]:
    """This process's ``chunks``, each loaded from ``work`` when an earlier build saved it, else embedded
    and saved there. Returns (the chunks' arrays in order, images embedded now, images loaded)."""
    my_rows = range(chunks.start * chunk_images, min(chunks.stop * chunk_images, len(source)))
    done = [c for c in chunks if (work / f"chunk-{c:06d}.npz").is_file()]
    resumed = sum(len(range(c * chunk_images, min((c + 1) * chunk_images, len(source)))) for c in done)
    parts: list[dict] = []
    embedded = 0
    with tqdm(total=len(my_rows), initial=resumed, desc="indexing", unit="image", disable=not progress) as bar:
        for chunk in chunks:
            path = work / f"chunk-{chunk:06d}.npz"
            rows = range(chunk * chunk_images, min((chunk + 1) * chunk_images, len(source)))
            if path.is_file():
                with np.load(path) as saved:
                    parts.append(dict(saved))
                continue
            arrays = _embed_chunk(model, processor, source, rows, batch_size, bar, keep_image_tokens)
            check_finite_embeddings(arrays["image_embeds"], "image", first_row=rows.start)  # before saving
            if keep_image_tokens:
                _check_storable_tokens(arrays["image_tokens"], first_row=rows.start)
            _save_chunk(path, arrays)
            parts.append(arrays)
            embedded += len(rows)
    return parts, embedded, resumed


def _publish(output, source, arrays, model_id, fingerprints, settings, nlist) -> None:
    import faiss

    embeds = np.ascontiguousarray(arrays["image_embeds"], dtype=np.float32)

    def write(staging: Path) -> None:
        faiss.write_index(make_faiss_index(embeds, settings["index"]["type"], nlist), str(staging / FAISS_FILE))
        np.save(staging / EMBEDS_FILE, embeds)
        paths = source.paths
        if source.dataset is not None:
            np.save(staging / CAPTIONS_FILE, np.ascontiguousarray(arrays["caption_embeds"], dtype=np.float32))
            paths = write_benchmark_images(source, staging / "images")
        tokens = arrays.get("image_tokens")
        if tokens is not None:
            np.save(staging / TOKENS_FILE, np.ascontiguousarray(tokens, dtype=TOKENS_DTYPE))
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model_dir": model_id,
            "fingerprints": fingerprints,
            **settings,
            "count": len(source),
            "dim": int(embeds.shape[1]),
            "image_tokens": None if tokens is None else {"dtype": "float16", "shape": list(tokens.shape)},
            "image_root": str(source.folder) if source.folder is not None else None,
            "languages": source.languages,
            "skipped": {"count": source.num_skipped, "images": source.skipped},
            "items": [
                {"id": item_id, "path": path, **({"captions": source.captions[i]} if source.captions else {})}
                for i, (item_id, path) in enumerate(zip(source.ids, paths, strict=True))
            ],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")

    write_output(output, write, GALLERY_INDEX, overwrite=True)  # output_state allowed it


class GalleryIndex:
    """A built gallery index, loaded: ``search`` over the images, captions and paths of its n items.

    ``image_embeds [n, D]`` (float32, CPU tensor); ``caption_embeds [n*K, D]`` image-major or None;
    ``languages`` the K caption languages (empty for a folder gallery); ``image_tokens`` the stored image
    tokens ``[n, P, Cv]`` (float16, memory-mapped, read-only: :meth:`stored_image_tokens`) or None for an index
    built without them. Stored tokens that do not match the manifest raise ValueError.
    """

    def __init__(self, folder: str | os.PathLike):
        import faiss

        self.folder = Path(folder).resolve()
        manifest = _read_json(self.folder / MANIFEST)
        if manifest is None or manifest.get("format") != FORMAT:
            raise ValueError(f"{folder} is not a gallery index: "
                             f"build one with 'ccr index MODEL_DIR IMAGES --output {folder}'")
        self.manifest = manifest
        self.faiss_index = faiss.read_index(str(self.folder / FAISS_FILE))
        self.image_embeds = torch.from_numpy(np.load(self.folder / EMBEDS_FILE))
        captions = self.folder / CAPTIONS_FILE
        self.caption_embeds = torch.from_numpy(np.load(captions)) if captions.is_file() else None
        try:
            self.image_tokens = _open_image_tokens(self.folder, manifest)
        except ValueError as error:
            raise ValueError(f"{error}: rebuild the index with 'ccr index {manifest['model_dir']} IMAGES --output "
                             f"{folder} --keep-image-tokens'") from None
        self.items = manifest["items"]
        self.languages = list(manifest["languages"])
        root = manifest.get("image_root")
        self.image_root = Path(root) if root else self.folder

    def __len__(self) -> int:
        return len(self.items)

    @property
    def model_fingerprint(self) -> str:
        return self.manifest["fingerprints"]["model"]

    def image_path(self, i: int) -> Path:
        """Absolute path of item i's image file."""
        return self.image_root / self.items[i]["path"]

    def caption(self, i: int, language: str) -> str | None:
        return self.items[i].get("captions", {}).get(language)

    def stored_image_tokens(self, items: list[int]) -> torch.Tensor | None:
        """The stored image tokens of gallery ``items`` (N indices), ``[N, P, Cv]`` float16 on the CPU, read
        from the memory-mapped file; None for an index built without them."""
        if self.image_tokens is None:
            return None
        return torch.from_numpy(self.image_tokens[np.asarray(items, dtype=np.int64)])

    def search(self, query_embeds: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """query embeddings ``[Q, D]`` (L2-normalised) -> (scores ``[Q, k']``, item indices ``[Q, k']``),
        best first, ``k' = min(k, n)``; exact for a flat index."""
        k = min(k, len(self))
        queries = np.ascontiguousarray(query_embeds.detach().float().cpu().numpy())
        scores, indices = self.faiss_index.search(queries, k)
        return torch.from_numpy(scores), torch.from_numpy(indices).long()
