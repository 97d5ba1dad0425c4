"""Interpreter start-up hook of ccr-1tok (called by ``ccr_evaluate_mrv.pth`` in site-packages).

It only puts a one-shot entry on ``sys.meta_path``; when the program first imports ``evaluate``, that
entry lets ``evaluate`` initialise and then installs the ``mrv`` metric into its module cache (see
``evaluate_cache``), so that ``evaluate.load("mrv")`` finds it. Runs in every interpreter, so it imports
nothing beyond ``sys`` until ``evaluate`` is imported.
"""

from __future__ import annotations

import sys


class _RegisterWhenEvaluateIsImported:
    """A one-shot ``sys.meta_path`` entry: registers the metric once ``evaluate`` has been imported."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != "evaluate":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec("evaluate")  # the regular finders, this one removed
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module) -> None:
            run_module(module)
            from .evaluate_cache import register_or_warn

            register_or_warn()

        spec.loader.exec_module = exec_module
        return spec


def install_import_hook() -> None:
    """Register the metric when ``evaluate`` gets imported (now, if it already is)."""
    if "evaluate" in sys.modules:
        from .evaluate_cache import register_or_warn

        register_or_warn()
    elif not any(isinstance(finder, _RegisterWhenEvaluateIsImported) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterWhenEvaluateIsImported())
