"""The one place a device name (``cpu``, ``cuda``, ``cuda:N``, ``auto``) becomes a torch device."""

from __future__ import annotations

import re

import torch

from mocme.errors import MocmeError

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda`` and ``cuda:N`` as named.

    Checked before any work: another name, or a CUDA device this machine does not have, is a one-line
    :class:`MocmeError`.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    cuda = _CUDA.fullmatch(name)
    if cuda is None:
        raise MocmeError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)")
    if not torch.cuda.is_available():
        raise MocmeError(f"device {name!r} requested but no CUDA GPU is available (use --device cpu or auto)")
    if cuda.group(1) is not None and int(cuda.group(1)) >= torch.cuda.device_count():
        raise MocmeError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device(name)
