"""Optional dependencies (:func:`mocme.extras.require`) and download bars for the feature extractors."""

from __future__ import annotations

import contextlib
import importlib

from mocme.extras import require

__all__ = ["quiet_downloads", "require"]


def quiet_downloads() -> None:
    """Silence the Hugging Face libraries' own loading and download bars (for ``--quiet``)."""
    for module, function in (
        ("huggingface_hub.utils", "disable_progress_bars"),
        ("transformers.utils.logging", "disable_progress_bar"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            getattr(importlib.import_module(module), function)()
