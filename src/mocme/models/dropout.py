"""Dropout with a cheaper random mask on the CPU.

``torch.nn.Dropout`` on the CPU draws one Bernoulli sample per element, which costs several times
the multiplication it guards. Here one 64-bit draw from the global generator gives four 16-bit
lanes, and an element is kept when its lane is at least ``p`` of the way up its range: the keep
probability is ``1 - p`` rounded to a multiple of 1/65536. Kept elements are scaled by
``1 / (1 - p)`` as usual; the draws follow ``torch.manual_seed``, so runs stay reproducible.
Elsewhere (CUDA has a fused dropout kernel) this is ``torch.nn.functional.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LANES = 4  # 16-bit lanes per 64-bit draw


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)``."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.numel() == 0:
            return x
        if x.device.type != "cpu" or torch.compiler.is_compiling():
            return F.dropout(x, self.p, True)
        scale = torch.where(_keep(x.shape, self.p, x.device), 1 / (1 - self.p), 0.0).to(x.dtype)
        return x * scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _keep(shape: torch.Size, p: float, device: torch.device) -> Tensor:
    """Bool mask of ``shape``, each element ``True`` with probability ``1 - p`` (to 1/65536)."""
    count = shape.numel()
    bits = torch.randint(-(2**63), 2**63 - 1, ((count + _LANES - 1) // _LANES,), dtype=torch.int64, device=device)
    threshold = round(p * 65536) - 32768
    return bits.view(torch.int16)[:count].view(shape) >= threshold
