"""Filtered ranks from score rows: the one place where ties and filtering are decided.

For a query with target ``t`` and score row ``s`` (one score per entity), with ``K`` the other
known answers of the query (filtered out):

- optimistic rank  = 1 + #{e not in K : s_e >  s_t}
- pessimistic rank =     #{e not in K : s_e >= s_t}   (the target itself counts once)
- realistic rank   = (optimistic + pessimistic) / 2   (PyKEEN's definition)

The target score is read from the same row, so it can never disagree with the candidates' scores.
Ties are exact IEEE comparisons: ``s_e > s_t`` and ``s_e < s_t`` are counted, and equal values,
equal infinities included, count as neither. A NaN score of the target or of a candidate that is
not filtered out is an error.

Speed: the counts are float sums of ``0/1`` comparison results (several times faster on CPU than
boolean reductions), taken a tile of rows at a time so that the passes over a tile stay in the CPU
cache; known answers are zeroed in the tile's comparison results (a scatter of the ``P`` known
positions, never a pass over the whole tile). NaN costs no pass of its own: it compares neither
greater nor less, so it shows up as a tie, and only batches with ties beyond the target are
searched for NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mocme.errors import NumericalError

_EXACT_FLOAT32_COUNT = 2**24  # float32 sums of 0/1 are exact below this many entities
TILE_ELEMENTS = 2**17  # scores per tile: 512 KiB, which with its comparison results stays in L2


def filtered_ranks(
    scores: Tensor, targets: Tensor, known_rows: Tensor, known_cols: Tensor, workspace: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Optimistic and pessimistic filtered ranks of the targets.

    Args:
        scores: float32, shape ``(B, N)``, higher is better. Not modified.
        targets: shape ``(B,)``, the true entity of each row.
        known_rows: shape ``(P,)``, row of each known answer (targets may be among them).
        known_cols: shape ``(P,)``, entity of each known answer. Pairs sorted by row, then entity
            (as :meth:`FilterIndex.pairs` gives them) are used as they are; others are sorted first.
        workspace: optional float32 buffer, reused across calls when it holds at least one tile
            (``min(B, max(1, TILE_ELEMENTS // N)) * N`` elements).

    Returns:
        ``(optimistic, pessimistic)``, each a float64 tensor of shape ``(B,)``.

    Raises:
        NumericalError: when the score of a target or of an unfiltered candidate is NaN.
    """
    if scores.dtype != torch.float32:
        # the counts are sums over a float32 workspace; a bfloat16 row of 5,000 higher candidates
        # would rank its target 4,993
        raise TypeError(f"filtered_ranks needs float32 scores, got {scores.dtype}")
    scores = scores.contiguous()
    batch, num_entities = scores.shape
    known = _known_positions(known_rows, known_cols, num_entities)
    target_scores = scores.gather(1, targets.unsqueeze(1))
    if bool(target_scores.isnan().any()):
        raise NumericalError("the model produced NaN scores")
    row_starts = torch.searchsorted(known, torch.arange(batch + 1, device=known.device) * num_entities)
    greater, less = _count_unfiltered(scores, target_scores, known, row_starts.tolist(), workspace)

    target_positions = torch.arange(batch, device=known.device) * num_entities + targets
    found = torch.searchsorted(known, target_positions).clamp_(max=max(len(known) - 1, 0))
    target_known = (known[found] == target_positions) if len(known) else torch.zeros(batch, dtype=torch.bool)
    other = (row_starts[1:] - row_starts[:-1] - target_known.long()).double()  # |K| per row
    ties = num_entities - greater - less - other - 1  # unfiltered ties and NaN, the target itself aside
    if bool((ties > 0).any()):
        _raise_on_unfiltered_nan(scores, known)
    optimistic = 1 + greater
    pessimistic = num_entities - less - other
    return optimistic.cpu(), pessimistic.cpu()


def _known_positions(known_rows: Tensor, known_cols: Tensor, num_entities: int) -> Tensor:
    """Flat positions ``row * N + entity`` of the known answers, sorted and distinct; shape ``(P,)``."""
    positions = torch.add(known_cols, known_rows, alpha=num_entities)
    if bool((positions[1:] > positions[:-1]).all()):
        return positions
    return torch.unique(positions)


def _count_unfiltered(
    scores: Tensor, target_scores: Tensor, known: Tensor, row_starts: list[int], workspace: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``#{e not known : s_e > s_t}`` and ``#{e not known : s_e < s_t}`` per row; float64 ``(B,)`` each.

    Args:
        scores: shape ``(B, N)``, contiguous.
        target_scores: shape ``(B, 1)``.
        known: shape ``(P,)``, sorted flat positions of the known answers in ``scores``.
        row_starts: ``B + 1`` offsets into ``known``: row ``i``'s known answers are
            ``known[row_starts[i]:row_starts[i + 1]]``.
        workspace: see :func:`filtered_ranks`.
    """
    batch, num_entities = scores.shape
    rows = max(1, min(batch, TILE_ELEMENTS // num_entities))  # at least 1: an empty batch has no tiles
    if workspace is None or workspace.numel() < rows * num_entities:
        workspace = torch.empty(rows * num_entities, dtype=scores.dtype, device=scores.device)
    accumulate = torch.float64 if num_entities >= _EXACT_FLOAT32_COUNT else scores.dtype
    greater = torch.empty(batch, dtype=accumulate, device=scores.device)
    less = torch.empty_like(greater)
    for start in range(0, batch, rows):
        end = min(batch, start + rows)
        block, target = scores[start:end], target_scores[start:end]
        work = workspace[: (end - start) * num_entities]
        tile_known = known[row_starts[start] : row_starts[end]] - start * num_entities
        for compare, out in ((torch.gt, greater), (torch.lt, less)):
            compare(block, target, out=work.view(end - start, num_entities))
            work.index_fill_(0, tile_known, 0.0)
            torch.sum(work.view(end - start, num_entities), 1, dtype=accumulate, out=out[start:end])
    return greater.double(), less.double()


def _raise_on_unfiltered_nan(scores: Tensor, known: Tensor) -> None:
    """The slow, exact check, run only for batches with ties: NaN anywhere but at known answers."""
    nan = scores.isnan().view(-1)
    nan.index_fill_(0, known, False)
    if bool(nan.any()):
        raise NumericalError("the model produced NaN scores")
