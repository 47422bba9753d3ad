"""MVCrec: ID-view and graph-view contrastive learning with multi-view attention fusion.

"ID and Graph View Contrastive Learning with Multi-View Attention Fusion for Sequential
Recommendation", arXiv 2604.14114.

NOTE: departures from the authors' code, all deliberate (see DESIGN.md §7): the transformers are
causal and every prefix of a sequence is trained in one pass; graph propagation is sparse
(torch-geometric) and runs once per step; the fusion gate is a real sigmoid gate; contrastive
terms use cosine similarity with a temperature; augmentations work on copies, and only their
last position (the one contrasted) is computed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.graph import EdgeDropout, ItemGraphPropagation
from model.losses import full_softmax_cross_entropy, info_nce
from model.session_encoder import SessionEncoder

#: Paired contrastive views: (ID view a, graph view a, ID view b, graph view b), ``[M, d]`` each.
ViewPair = tuple[Tensor, Tensor | None, Tensor, Tensor | None]


class MVCRec(nn.Module):
    """Session encoder + graph item table + LightGCN propagation + the training losses.

    With ``use_graph_view=False`` and ``cl_weight=0`` this is SASRec trained with full
    cross-entropy over every position.

    Args:
        encoder: the exported part (ID table, transformers, fusions).
        graph_source: ``"own"`` propagates a separate table ``G0`` (the paper's design), ``"id"``
            propagates the ID table itself.
        graph_layers / graph_combine: LightGCN depth ``K`` and layer combination.
        edge_dropout: probability of dropping an undirected graph edge in a training step.
        cl_edge_dropout: graph-side augmentation of the contrastive views: each of the two
            augmented copies reads graph rows propagated over its own edge-dropped graph
            (``0``: both read the step's graph).
        cl_weight: ``λ``; cl_temperature: ``τ``; cl_terms: which of ``seq``, ``graph``,
            ``cross`` are on.
        cl_views: ``"augment"`` contrasts the last positions of two crop/mask/reorder copies;
            ``"dropout"`` contrasts every position of the batch with a second pass of it
            (model-level augmentation, as in DuoRec's unsupervised term).

    Shapes:
        - adjacency: normalised ``[N+1, N+1]`` sparse
        - ``inputs``/``targets``: ``[B, L]`` right-padded with 0
        - ``augmented``: ``[2B, L']`` (two views stacked), ``augmented_lengths [2B]``
    """

    def __init__(self, encoder: SessionEncoder, graph_source: str = "own", graph_layers: int = 2,
                 graph_combine: str = "mean", edge_dropout: float = 0.0,
                 cl_edge_dropout: float = 0.0, cl_weight: float = 0.1,
                 cl_temperature: float = 0.2,
                 cl_terms: tuple[str, ...] = ("seq", "graph", "cross"), cl_views: str = "augment",
                 cl_max_positions: int = 2048) -> None:
        super().__init__()
        if graph_source not in ("own", "id"):
            raise ValueError(f"graph_source must be 'own' or 'id', got {graph_source!r}")
        if cl_views not in ("augment", "dropout"):
            raise ValueError(f"cl_views must be 'augment' or 'dropout', got {cl_views!r}")
        unknown = set(cl_terms) - {"seq", "graph", "cross"}
        if unknown:
            raise ValueError(f"unknown contrastive terms {sorted(unknown)}")
        self.encoder = encoder
        self.graph_source = graph_source
        self.cl_weight = cl_weight
        self.cl_temperature = cl_temperature
        self.cl_views = cl_views
        self.cl_max_positions = cl_max_positions
        self.cl_terms = tuple(t for t in cl_terms if encoder.use_graph_view or t == "seq")
        num_items, dim = encoder.num_items, encoder.dim
        if encoder.use_graph_view:
            if graph_source == "own":
                self.graph_table = nn.Embedding(num_items + 1, dim, padding_idx=0)
                nn.init.trunc_normal_(self.graph_table.weight, std=0.02)
                with torch.no_grad():
                    self.graph_table.weight[0].zero_()
            self.graph_mask = nn.Parameter(torch.zeros(dim).normal_(std=0.02))
            self.edge_dropout = EdgeDropout(edge_dropout)
            self.cl_edge_dropout = EdgeDropout(cl_edge_dropout)
            self.propagation = ItemGraphPropagation(graph_layers, graph_combine)

    @property
    def num_items(self) -> int:
        return self.encoder.num_items

    def graph_parameters(self) -> list[Tensor]:
        """The graph view's own parameters: its item table (``graph_source="own"``) and the
        mask token's row (none without the graph view)."""
        if not self.encoder.use_graph_view:
            return []
        own = [self.graph_table.weight] if self.graph_source == "own" else []
        return [*own, self.graph_mask]

    def graph_item_embeddings(self, adj: Tensor | None) -> Tensor | None:
        """Graph-view item embeddings ``g [N+1, d]`` (``None`` without the graph view)."""
        if not self.encoder.use_graph_view:
            return None
        if adj is None:
            raise ValueError("the graph view needs the item adjacency")
        return self.propagation(self._graph_base(), self.edge_dropout(adj))

    def _graph_base(self) -> Tensor:
        """The table the graph view propagates ``[N+1, d]``."""
        if self.graph_source == "own":
            return self.graph_table.weight
        return self.encoder.item_embedding.weight[: self.num_items + 1]

    def item_table(self, g: Tensor | None) -> Tensor:
        """Fused item embeddings ``[N+1, 2d]`` = ``[g_i ; e_i]`` (``[N+1, d]`` = ``e_i`` alone)."""
        e = self.encoder.item_embedding.weight[: self.num_items + 1]
        return e if g is None else torch.cat([g, e], dim=-1)

    def graph_rows(self, g: Tensor | None, item_ids: Tensor) -> Tensor | None:
        """Graph-view rows of a batch of sequences ``[B, L, d]``; the mask token has its own."""
        return None if g is None else self._rows_of(g, item_ids)

    def _rows_of(self, g: Tensor, item_ids: Tensor) -> Tensor:
        return torch.cat([g, self.graph_mask[None]])[item_ids]

    def calculate_loss(self, inputs: Tensor, targets: Tensor, adj: Tensor | None,
                       augmented: Tensor | None = None,
                       augmented_lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Cross-entropy over all items at every valid position, plus ``λ`` × contrastive terms.

        Returns the named terms and their weighted sum under ``"loss"``.
        """
        g = self.graph_item_embeddings(adj)
        h_id, h_graph = self.encoder.encode_views(inputs, self.graph_rows(g, inputs))
        valid = targets > 0  # [B L]
        query = self.encoder.fuse(h_id[valid], None if h_graph is None else h_graph[valid])
        losses = {"ce": full_softmax_cross_entropy(query, self.item_table(g), targets[valid])}
        total = losses["ce"]
        if self.cl_weight > 0 and self.cl_terms:
            if self.cl_views == "dropout":
                pair = self._dropout_views(g, inputs, valid, h_id, h_graph)
            elif augmented is not None and augmented_lengths is not None:
                pair = self._augmented_views(g, augmented, augmented_lengths, adj)
            else:
                raise ValueError("contrastive terms with cl_views='augment' need augmented "
                                 "sequences")
            contrastive = self._contrastive_terms(*pair)
            losses.update(contrastive)
            total = total + self.cl_weight * sum(contrastive.values())
        losses["loss"] = total
        return losses

    def _augmented_views(self, g: Tensor | None, augmented: Tensor, lengths: Tensor,
                         adj: Tensor | None) -> ViewPair:
        """Last-position vectors of the two stacked augmentations ``[2B, L']``, computed over
        their packed items (the copies are short and only their last position is contrasted)."""
        half = augmented.size(0) // 2
        valid = torch.arange(augmented.size(1), device=augmented.device) < lengths[:, None]
        item_ids = augmented[valid]  # [T'] copy a's items, then copy b's
        graph_rows: Tensor | None
        if g is not None and adj is not None and self.cl_edge_dropout.p > 0:
            base = self._graph_base()
            first = int(lengths[:half].sum())  # copy a's items come first in item_ids
            graph_rows = torch.cat([  # each copy over its own dropped graph
                self._rows_of(self.propagation(base, self.cl_edge_dropout(adj)), copy)
                for copy in (item_ids[:first], item_ids[first:])])
        else:
            graph_rows = self.graph_rows(g, item_ids)
        z_id, z_graph = self.encoder.last_views(item_ids, graph_rows, lengths)  # [2B d] each
        return (z_id[:half], None if z_graph is None else z_graph[:half],
                z_id[half:], None if z_graph is None else z_graph[half:])

    def _dropout_views(self, g: Tensor | None, inputs: Tensor, valid: Tensor, h_id: Tensor,
                       h_graph: Tensor | None) -> ViewPair:
        """The main pass and a second pass of the same batch (another dropout draw), compared
        at every valid position (at most ``cl_max_positions``, sampled)."""
        h_id_b, h_graph_b = self.encoder.encode_views(inputs, self.graph_rows(g, inputs))
        picked = torch.nonzero(valid.flatten()).flatten()  # [P]
        if picked.numel() > self.cl_max_positions:
            keep = torch.randperm(picked.numel(), device=picked.device)[: self.cl_max_positions]
            picked = picked[keep]

        def at(h: Tensor | None) -> Tensor | None:
            return None if h is None else h.flatten(0, 1)[picked]

        return at(h_id), at(h_graph), at(h_id_b), at(h_graph_b)  # type: ignore[return-value]

    def _contrastive_terms(self, id_a: Tensor, graph_a: Tensor | None, id_b: Tensor,
                           graph_b: Tensor | None) -> dict[str, Tensor]:
        """InfoNCE terms between views ``a`` and ``b`` (rows are paired) ``[M, d]``."""
        tau = self.cl_temperature
        terms: dict[str, Tensor] = {}
        if "seq" in self.cl_terms:
            terms["cl_seq"] = info_nce(id_a.float(), id_b.float(), tau)
        if graph_a is not None and graph_b is not None:
            if "graph" in self.cl_terms:
                terms["cl_graph"] = info_nce(graph_a.float(), graph_b.float(), tau)
            if "cross" in self.cl_terms:
                terms["cl_cross"] = info_nce(graph_a.float(), id_b.float(), tau)
        return terms

    def full_sort_predict(self, item_ids: Tensor, lengths: Tensor, g: Tensor | None,
                          table: Tensor) -> Tensor:
        """Scores of every item for each session ``[B, N+1]``; ``g`` and ``table`` come from
        :meth:`graph_item_embeddings` and :meth:`item_table`, computed once per evaluation."""
        query = self.encoder(item_ids, self.graph_rows(g, item_ids), lengths)  # [B D]
        return query @ table.T
