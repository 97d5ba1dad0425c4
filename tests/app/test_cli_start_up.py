"""``ccr COMMAND --help`` starts at once: building a command's options imports no heavy library (torch,
transformers, datasets, FAISS, Gradio, the Hub client, ...); each command imports those when it runs.
``ccr train`` is the exception: its options are ``transformers.TrainingArguments`` fields."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Top-level modules that take a second or more to import, or pull in those that do.
HEAVY = ("torch", "transformers", "datasets", "faiss", "gradio", "huggingface_hub", "evaluate", "accelerate",
         "tokenizers", "safetensors", "numpy", "pyarrow", "pandas", "PIL", "matplotlib", "scipy", "onnx",
         "onnxruntime", "hub_cards")
NEEDS_TRANSFORMERS = {("train",)}


def test_every_command_but_train_shows_its_help_without_heavy_imports():
    """In one fresh interpreter, ``ccr COMMAND --help`` for every command but train, in turn; after each, no
    heavy module may be loaded (the first command that loads one is named)."""
    script = textwrap.dedent(f"""
        import contextlib, io, sys
        from modeling_ccr.app.cli import SUBCOMMANDS, main

        heavy = {HEAVY!r}
        def loaded():
            return sorted({{name.split(".")[0] for name in sys.modules}} & set(heavy))

        assert not loaded(), f"loaded before any command: {{loaded()}}"
        for words, _, _ in SUBCOMMANDS:
            if words in {NEEDS_TRANSFORMERS!r}:
                continue
            shown = io.StringIO()
            with contextlib.redirect_stdout(shown):
                try:
                    main([*words, "--help"])
                except SystemExit as exited:
                    assert exited.code == 0, f"ccr {{' '.join(words)}} --help exited {{exited.code}}"
                else:
                    raise AssertionError(f"ccr {{' '.join(words)}} --help did not exit")
            assert shown.getvalue().startswith(f"usage: ccr {{' '.join(words)}}"), shown.getvalue()[:200]
            assert not loaded(), f"ccr {{' '.join(words)}} --help imports {{loaded()}}"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_the_light_reranking_modes_are_the_configs():
    """``modeling_ccr.constants`` reads ``RERANKING_MODES`` from the remote-code file ``configuration_ccr.py``
    (which cannot import it) instead of importing it: both give the same tuple."""
    from modeling_ccr import configuration_ccr, constants

    assert constants.RERANKING_MODES == configuration_ccr.RERANKING_MODES
