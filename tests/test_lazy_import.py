"""Importing the package and starting ``ccr`` load neither torch nor transformers, and the CCR classes are
still registered with the transformers Auto classes once transformers loads them, whatever the order."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from transformers import AutoConfig, AutoModel, AutoModelForZeroShotImageClassification
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

import modeling_ccr
from modeling_ccr import CCRConfig, CCRModel, CCRProcessor, EfficientNetLiteConfig


def test_every_auto_class_knows_the_ccr_classes_in_this_process():
    assert CONFIG_MAPPING["ccr"] is CCRConfig and CONFIG_MAPPING["efficientnet_lite"] is EfficientNetLiteConfig
    assert AutoModel._model_mapping[CCRConfig] is CCRModel
    assert AutoModelForZeroShotImageClassification._model_mapping[CCRConfig] is CCRModel
    assert PROCESSOR_MAPPING[CCRConfig] is CCRProcessor
    assert isinstance(AutoConfig.for_model("ccr"), CCRConfig)


def test_public_names_load_on_use_and_unknown_names_fail():
    assert set(modeling_ccr.__all__) <= set(dir(modeling_ccr))
    assert modeling_ccr.OneToKContrastiveLoss.__module__ == "modeling_ccr.losses.one_to_k"
    try:
        modeling_ccr.NoSuchName  # noqa: B018
    except AttributeError as error:
        assert "NoSuchName" in str(error)
    else:
        raise AssertionError("an unknown name did not raise AttributeError")


def test_the_cli_starts_without_torch_and_registration_waits_for_a_half_imported_module():
    """In a fresh process: the ``ccr`` entry point and ``ccr --help`` import neither torch nor transformers;
    then importing the model module first (which itself imports the Auto classes half-way through, the
    case where registration must wait for it) still registers everything."""
    script = textwrap.dedent("""
        import contextlib, io, sys
        from modeling_ccr.app.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as shown:
            assert main(["--help"]) == 0
        assert "commands:" in shown.getvalue()
        heavy = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "transformers", "gradio"})
        assert not heavy, heavy
        from modeling_ccr.modeling_ccr import CCRModel
        from modeling_ccr import CCRConfig
        from transformers import AutoModel, AutoProcessor
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
        assert CONFIG_MAPPING["ccr"] is CCRConfig
        assert AutoModel._model_mapping[CCRConfig] is CCRModel
        assert PROCESSOR_MAPPING[CCRConfig].__name__ == "CCRProcessor"
        import modeling_ccr.auto_registration as registration
        assert not registration._pending and registration._FINDER not in sys.meta_path
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
