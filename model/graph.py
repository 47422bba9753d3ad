"""LightGCN propagation of an item table over the item co-occurrence graph.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation",
SIGIR 2020. Layers are torch-geometric ``LGConv`` over a pre-normalised sparse adjacency
``D^-1/2 (A + I) D^-1/2``, so one propagation is ``K`` sparse-dense products and nothing dense
``N x N`` is ever built.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import LGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.typing import Adj


def normalized_adjacency(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None,
                         ) -> Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a sparse CSR tensor ``[num_nodes, num_nodes]``.

    ``edge_index [2, E]`` must hold both directions of every undirected edge (with equal
    weights): the propagation relies on the result being symmetric.
    """
    index, weight = gcn_norm(edge_index, edge_weight, num_nodes, add_self_loops=True)
    assert weight is not None
    adj = torch.sparse_coo_tensor(index.flip(0), weight, (num_nodes, num_nodes),
                                  check_invariants=True).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return adj.to_sparse_csr()


class _SymmetricSpmm(torch.autograd.Function):
    """``adj @ x`` for a constant symmetric sparse ``adj``: the backward is ``adj @ grad``.

    torch's generic sparse backward transposes (sorts) the CSR matrix on every call, which costs
    ~8x the forward product; with a symmetric matrix the transpose is the matrix itself.
    """

    @staticmethod
    def forward(ctx: Any, adj: Tensor, x: Tensor) -> Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        return None, torch.sparse.mm(ctx.adj, grad)


class SymmetricLGConv(LGConv):
    """``LGConv`` over a pre-normalised *symmetric* sparse adjacency (fast backward)."""

    def __init__(self) -> None:
        super().__init__(normalize=False)

    def message_and_aggregate(self, adj_t: Adj, x: Tensor) -> Tensor:
        if isinstance(adj_t, Tensor) and adj_t.is_sparse_csr:
            return _SymmetricSpmm.apply(adj_t, x)
        return super().message_and_aggregate(adj_t, x)


class ItemGraphPropagation(nn.Module):
    r"""``K`` LGConv layers whose outputs (layer 0 included) are combined by mean or sum.

    Args:
        num_layers: number of propagation layers ``K``.
        combine: ``"mean"`` (LightGCN's :math:`\alpha_k = 1/(K+1)`) or ``"sum"``.

    Shapes:
        - input: item table ``[N+1, d]``, normalised adjacency ``[N+1, N+1]`` (sparse)
        - output: graph-view item embeddings ``[N+1, d]``
    """

    def __init__(self, num_layers: int = 2, combine: str = "mean") -> None:
        super().__init__()
        if combine not in ("mean", "sum", "last"):
            raise ValueError(f"combine must be 'mean', 'sum' or 'last', got {combine!r}")
        self.num_layers = num_layers
        self.combine = combine
        self.convs = nn.ModuleList(SymmetricLGConv() for _ in range(num_layers))

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        # NOTE: always float32: sparse products have no reduced-precision kernels everywhere,
        # and the propagation is a small part of a step.
        # A running sum of the layers, not a stack: the table is large and its copies dominate
        # everything but the sparse products.
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = x.float()
            total = h
            for conv in self.convs:
                h = conv(h, adj)
                total = total + h
        if self.combine == "last":
            return h
        return total / (self.num_layers + 1) if self.combine == "mean" else total


class EdgeDropout(nn.Module):
    """Drops each undirected edge of a symmetric normalised adjacency with probability ``p``
    (both directions together, so the result stays symmetric) and rescales the kept ones by
    ``1 / (1 - p)``; self loops are always kept. A regulariser of the graph view (DropEdge,
    Rong et al., ICLR 2020; the edge dropout of SGL, Wu et al., SIGIR 2021). Training only.

    Shapes:
        - input / output: sparse CSR ``[N+1, N+1]``
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"edge dropout must be in [0, 1), got {p}")
        self.p = p
        self._pairs: tuple[tuple[int, int], Tensor, int] | None = None  # (key, pair, pairs)

    def forward(self, adj: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return adj
        values = adj.values()
        pair, num_pairs = self._pair_index(adj)
        keep = torch.rand(num_pairs + 1, device=values.device) >= self.p
        keep[-1] = True  # the self loops' slot
        scale = keep.to(values.dtype) / (1.0 - self.p)
        scale[-1] = 1.0
        return torch.sparse_csr_tensor(adj.crow_indices(), adj.col_indices(),
                                       values * scale[pair], adj.shape,
                                       check_invariants=False)  # same structure as adj

    def _pair_index(self, adj: Tensor) -> tuple[Tensor, int]:
        """For every stored entry, the id of its undirected edge (``num_pairs`` for self loops);
        computed once per adjacency."""
        key = (adj.values().data_ptr(), adj.values().numel())
        if self._pairs is not None and self._pairs[0] == key:
            return self._pairs[1], self._pairs[2]
        crow, col = adj.crow_indices(), adj.col_indices()
        row = torch.repeat_interleave(torch.arange(adj.size(0), device=col.device), crow.diff())
        low, high = torch.minimum(row, col), torch.maximum(row, col)
        pairs, pair = torch.unique(low * adj.size(0) + high, return_inverse=True)
        num_pairs = int(pairs.numel())
        pair = torch.where(row == col, num_pairs, pair)
        self._pairs = (key, pair, num_pairs)
        return pair, num_pairs
