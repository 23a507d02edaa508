"""Optional dependencies (:func:`mocme.extras.require`) and devices for the feature extractors."""

from __future__ import annotations

import contextlib
import importlib

import torch

from mocme.errors import MocmeError
from mocme.extras import require

__all__ = ["quiet_downloads", "require", "resolve_device"]


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` (or ``cuda:N``), or ``auto`` (cuda when available); checked before any work."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise MocmeError(f"unknown device {device!r} (use cpu, cuda, cuda:N or auto)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise MocmeError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
    if resolved.type not in ("cpu", "cuda"):
        raise MocmeError(f"unsupported device {device!r} (use cpu, cuda, cuda:N or auto)")
    return resolved


def quiet_downloads() -> None:
    """Silence the Hugging Face libraries' own loading and download bars (for ``--quiet``)."""
    for module, function in (
        ("huggingface_hub.utils", "disable_progress_bars"),
        ("transformers.utils.logging", "disable_progress_bar"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            getattr(importlib.import_module(module), function)()
