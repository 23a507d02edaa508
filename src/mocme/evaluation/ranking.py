"""Filtered ranks from score rows: the one place where ties and filtering are decided.

For a query with target ``t`` and score row ``s`` (one score per entity), with ``K`` the other
known answers of the query (filtered out):

- optimistic rank  = 1 + #{e not in K : s_e >  s_t}
- pessimistic rank =     #{e not in K : s_e >= s_t}   (the target itself counts once)
- realistic rank   = (optimistic + pessimistic) / 2   (PyKEEN's definition)

The target score is read from the same row, so it can never disagree with the candidates' scores.
Ties are exact IEEE comparisons: ``s_e > s_t`` and ``s_e < s_t`` are counted over every entity,
and equal values, equal infinities included, count as neither. NaN scores are an error.

Speed: the counts are float sums of float ``0/1`` comparison results (several times faster on
CPU than boolean reductions), taken a tile of rows at a time so that each tile's passes stay in
the CPU cache; the known answers are then corrected for with a gather of their scores only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mocme.errors import NumericalError

_EXACT_FLOAT32_COUNT = 2**24  # float32 sums of 0/1 are exact below this many entities
TILE_ELEMENTS = 2**17  # scores per tile: a few hundred KiB, which stays in a core's L2 cache


def filtered_ranks(
    scores: Tensor, targets: Tensor, known_rows: Tensor, known_cols: Tensor, workspace: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Optimistic and pessimistic filtered ranks of the targets.

    Args:
        scores: float32, shape ``(B, N)``, higher is better. Not modified.
        targets: shape ``(B,)``, the true entity of each row.
        known_rows: shape ``(P,)``, row of each known answer (targets may be among them).
        known_cols: shape ``(P,)``, entity of each known answer; the pairs must be distinct.
        workspace: optional float32 buffer, reused across calls when it holds at least one tile
            (``min(B, max(1, TILE_ELEMENTS // N)) * N`` elements).

    Returns:
        ``(optimistic, pessimistic)``, each a float64 tensor of shape ``(B,)``.

    Raises:
        NumericalError: when a score is NaN.
    """
    scores = scores.contiguous()
    num_entities = scores.shape[1]
    target_scores = scores.gather(1, targets.unsqueeze(1)).squeeze(1)
    greater, less = _count_greater_less(scores, target_scores, workspace)
    known_greater, known_less, known = _count_known(scores, target_scores, targets, known_rows, known_cols)
    optimistic = 1 + greater - known_greater
    pessimistic = num_entities - less - (known - known_less)
    return optimistic.cpu(), pessimistic.cpu()


def _count_greater_less(scores: Tensor, target_scores: Tensor, workspace: Tensor | None) -> tuple[Tensor, Tensor]:
    """``#{e : s_e > s_t}`` and ``#{e : s_e < s_t}`` per row, over all entities; float64 ``(B,)`` each."""
    batch, num_entities = scores.shape
    rows = min(batch, max(1, TILE_ELEMENTS // num_entities))
    if workspace is None or workspace.numel() < rows * num_entities:
        workspace = torch.empty(rows * num_entities, dtype=scores.dtype, device=scores.device)
    accumulate = torch.float64 if num_entities >= _EXACT_FLOAT32_COUNT else scores.dtype
    greater = torch.empty(batch, dtype=accumulate, device=scores.device)
    less = torch.empty_like(greater)
    totals = torch.empty(batch, dtype=scores.dtype, device=scores.device)
    for start in range(0, batch, rows):
        end = min(batch, start + rows)
        tile, target = scores[start:end], target_scores[start:end, None]
        work = workspace[: (end - start) * num_entities].view(end - start, num_entities)
        torch.sum(tile, 1, out=totals[start:end])  # NaN when a score is NaN (or +inf and -inf meet)
        torch.sum(torch.gt(tile, target, out=work), 1, dtype=accumulate, out=greater[start:end])
        torch.sum(torch.lt(tile, target, out=work), 1, dtype=accumulate, out=less[start:end])
    if bool(totals.isnan().any()) and bool(scores.isnan().any()):
        raise NumericalError("the model produced NaN scores")
    return greater.double(), less.double()


def _count_known(
    scores: Tensor, target_scores: Tensor, targets: Tensor, known_rows: Tensor, known_cols: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Per row, the known answers other than the target: how many score above it, below it, in all.

    Float64 ``(B,)`` each; reads only the ``P`` known scores.
    """
    batch, num_entities = scores.shape
    known = scores.view(-1).index_select(0, known_rows * num_entities + known_cols)
    # 0 below the target, 1 tied (equal infinities too: sign(nan) = 0), 2 above; 3 the target itself
    side = torch.sign(known - target_scores.index_select(0, known_rows)).long() + 1
    side.masked_fill_(known_cols == targets.index_select(0, known_rows), 3)
    counts = torch.bincount(known_rows * 4 + side, minlength=4 * batch).view(batch, 4).double()
    return counts[:, 2], counts[:, 0], counts[:, :3].sum(1)
