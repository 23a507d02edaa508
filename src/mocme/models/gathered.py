"""Dot products of each query with its own candidates, ``s_bk = <q_b, T[i_bk]>``, without a ``(B, k, d)`` copy.

The candidate ids of a batch are the column indices of a sparse ``(B, N)`` CSR matrix with ``k``
entries per row. The forward pass is one sampled dense-dense product (SDDMM); the backward pass is
two sparse-dense products, ``∂q = G T`` and ``∂T = Gᵀ q``, with ``G`` holding the incoming
gradients at the same positions. Gathering ``T[i]`` into a ``(B, k, d)`` tensor instead moves
``B·k·d`` values three times (gather, its gradient, the scatter-add into ``T``).

The sparse kernels are used for float32 tensors on the CPU in eager mode; elsewhere (CUDA, other
dtypes, under ``torch.compile``) the gathered form is used, which is also what
``SPARSE_ON_CPU = False`` selects (tests compare both).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

SPARSE_ON_CPU = True


def gathered_dot(q: Tensor, table: Tensor, index: Tensor) -> Tensor:
    """``<q_b, table[index_bk]>``; ``q`` ``(B, d)``, ``table`` ``(N, d)``, ``index`` ``(B, k)`` -> ``(B, k)``."""
    sparse = (
        SPARSE_ON_CPU
        and not torch.compiler.is_compiling()
        and q.device.type == "cpu"
        and q.dtype == table.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )
    if not sparse:
        return torch.bmm(F.embedding(index, table), q.unsqueeze(2)).squeeze(2)
    return _SparseGatheredDot.apply(q, table, index)


def _pattern(index: Tensor, values: Tensor, num_columns: int) -> Tensor:
    """A ``(B, N)`` CSR matrix with ``values`` ``(B, k)`` at columns ``index`` ``(B, k)`` (repeats allowed)."""
    batch, k = index.shape
    rows = torch.arange(0, batch * k + 1, k, device=index.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(
            rows, index.reshape(-1), values.reshape(-1), (batch, num_columns), check_invariants=False
        )


class _SparseGatheredDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, table: Tensor, index: Tensor) -> Tensor:
        pattern = _pattern(index, q.new_zeros(index.shape), len(table))
        scores = torch.sparse.sampled_addmm(pattern, q.contiguous(), table.contiguous().T, beta=0.0)
        ctx.save_for_backward(q, table, index)
        return scores.values().view(index.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        q, table, index = ctx.saved_tensors
        pattern = _pattern(index, grad.contiguous(), len(table))
        grad_q = pattern @ table if ctx.needs_input_grad[0] else None
        grad_table = pattern.t() @ q if ctx.needs_input_grad[1] else None
        return grad_q, grad_table, None
