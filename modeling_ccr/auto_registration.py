"""Register the CCR classes with transformers' Auto classes when transformers loads them, not before.

Why: importing transformers takes seconds (``import transformers`` alone about 1 s, its Auto classes with
torch 3-5 s on a 2-core machine), and every ``ccr`` command imports this package first, so a package that
registered eagerly made ``ccr --help`` take 6 s. Instead, :func:`install` (called by the package's
``__init__``) leaves a finder on ``sys.meta_path`` that watches the three transformers modules defining
the Auto classes (``transformers.models.auto.configuration_auto``, ``modeling_auto``,
``processing_auto``). As soon as one of them has been executed, the registrations that wait for it run:
an installed user who imported ``modeling_ccr`` still loads saved models with ``AutoModel`` /
``AutoProcessor`` / ``pipeline`` and no ``trust_remote_code``, and pays for the model code only then.
Modules already imported when :func:`install` runs are served at once.

A registration also needs its CCR module (``modeling_ccr.modeling_ccr`` for ``AutoModel``). When that
module is itself being executed (it imports the Auto classes near its top, which is what woke the
registration), the registration waits for it to finish: the finder watches the CCR modules too. Once every
registration has run, the finder removes itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from dataclasses import dataclass

_AUTO = "transformers.models.auto."


@dataclass(frozen=True)
class Registration:
    """``AUTO_CLASS.register(KEY, VALUE)`` for each ``(auto_class, key, value)`` of ``calls``, where the
    Auto classes live in ``auto_module`` and the key / value classes in the package's ``modules``
    (``(class name, module)`` pairs); ``AutoConfig`` is given the key class's ``model_type``, as it takes."""

    auto_module: str
    calls: tuple[tuple[str, str, str], ...]
    modules: tuple[tuple[str, str], ...]

    @property
    def names(self) -> set[str]:
        """The modules it waits for: the Auto module and the CCR modules."""
        return {self.auto_module, *(module for _, module in self.modules)}

    def ready(self) -> bool:
        """Whether the Auto module and every CCR module it needs are loaded or loadable now (none of them
        half-executed)."""
        return sys.modules.get(self.auto_module) is not None and not any(map(_executing, self.names))

    def run(self) -> None:
        """Import what it needs and register."""
        auto = importlib.import_module(self.auto_module)
        classes = {name: getattr(importlib.import_module(module), name) for name, module in self.modules}
        for auto_class, key, value in self.calls:
            key_class = classes[key]
            getattr(auto, auto_class).register(key_class.model_type if auto_class == "AutoConfig" else key_class,
                                               classes[value], exist_ok=True)


_CONFIGS = (("CCRConfig", "modeling_ccr.configuration_ccr"),
            ("EfficientNetLiteConfig", "modeling_ccr.configuration_efficientnet_lite"))
REGISTRATIONS = (
    Registration(_AUTO + "configuration_auto",
                 (("AutoConfig", "CCRConfig", "CCRConfig"),
                  ("AutoConfig", "EfficientNetLiteConfig", "EfficientNetLiteConfig")),
                 _CONFIGS),
    Registration(_AUTO + "modeling_auto",
                 (("AutoModel", "CCRConfig", "CCRModel"),
                  ("AutoModelForZeroShotImageClassification", "CCRConfig", "CCRModel"),
                  ("AutoModel", "EfficientNetLiteConfig", "EfficientNetLiteModel"),
                  ("AutoModelForImageClassification", "EfficientNetLiteConfig",
                   "EfficientNetLiteForImageClassification")),
                 (*_CONFIGS, ("CCRModel", "modeling_ccr.modeling_ccr"),
                  ("EfficientNetLiteModel", "modeling_ccr.modeling_efficientnet_lite"),
                  ("EfficientNetLiteForImageClassification", "modeling_ccr.modeling_efficientnet_lite"))),
    Registration(_AUTO + "processing_auto",
                 (("AutoProcessor", "CCRConfig", "CCRProcessor"),),
                 (("CCRConfig", "modeling_ccr.configuration_ccr"), ("CCRProcessor", "modeling_ccr.processing_ccr"))),
)

_pending: list[Registration] = []
_watched: set[str] = set()  # the modules the pending registrations wait for (the finder's every-import test)
_running = False


def _executing(name: str) -> bool:
    """Whether module ``name`` is being executed right now (imported, not finished)."""
    module = sys.modules.get(name)
    return module is not None and bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _run_ready() -> None:
    """Run every pending registration that is ready, until none is (a registration's imports can make
    another ready); re-entrant calls from those imports return at once."""
    global _running
    if _running:
        return
    _running = True
    try:
        while ready := [registration for registration in _pending if registration.ready()]:
            for registration in ready:
                _pending.remove(registration)
                _watched.clear()
                _watched.update(*(pending.names for pending in _pending))
                registration.run()
    finally:
        _running = False
        if not _pending and _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)


class _ThenRegister(importlib.abc.Loader):
    """A watched module's loader, which runs the ready registrations after executing the module."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.__spec__._initializing = False  # finished: what waited for it may run now
        _run_ready()

    def __getattr__(self, name):  # get_source, get_filename, is_package, ...: the real loader's
        return getattr(self._loader, name)


class _WatchFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a watched module, the spec the later finders give, its loader wrapped."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _watched:  # asked on every import while registrations wait: a set lookup
            return None
        for finder in sys.meta_path[sys.meta_path.index(self) + 1:]:
            spec = getattr(finder, "find_spec", lambda *_: None)(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenRegister(spec.loader)
                return spec
        return None


_FINDER = _WatchFinder()


def install() -> None:
    """Register now what transformers has already loaded; watch for the rest (once per process)."""
    if _FINDER in sys.meta_path:
        return
    _pending[:] = REGISTRATIONS
    _watched.update(*(registration.names for registration in REGISTRATIONS))
    sys.meta_path.insert(0, _FINDER)
    _run_ready()
