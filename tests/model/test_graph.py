import pytest
import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_undirected

from model.graph import EdgeDropout, ItemGraphPropagation, normalized_adjacency


def random_graph(num_nodes: int, num_edges: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    edges = torch.randint(1, num_nodes, (2, num_edges), generator=gen)
    edges = edges[:, edges[0] != edges[1]]
    return to_undirected(edges, num_nodes=num_nodes)


def dense_normalized(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    a = torch.zeros(n, n)
    a[edge_index[0], edge_index[1]] = 1.0
    a = a + torch.eye(n)
    d = a.sum(1).pow(-0.5)
    return d[:, None] * a * d[None, :]


@pytest.mark.parametrize("combine", ["mean", "sum", "last"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_sparse_propagation_equals_dense(combine, layers):
    n = 30
    edge_index = random_graph(n, 80, seed=layers)
    x = torch.randn(n, 8)
    out = ItemGraphPropagation(layers, combine)(x, normalized_adjacency(edge_index, n))
    dense = dense_normalized(edge_index, n)
    outs = [x]
    for _ in range(layers):
        outs.append(dense @ outs[-1])
    expected = {"mean": torch.stack(outs).mean(0), "sum": torch.stack(outs).sum(0),
                "last": outs[-1]}[combine]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_csr_adjacency_equals_edge_index_message_passing():
    n = 25
    edge_index = random_graph(n, 60, seed=7)
    x = torch.randn(n, 4, requires_grad=True)
    prop = ItemGraphPropagation(2, "mean")
    via_csr = prop(x, normalized_adjacency(edge_index, n))
    index, weight = gcn_norm(edge_index, None, n, add_self_loops=True)
    layers = [x]
    for conv in prop.convs:
        layers.append(conv(layers[-1], index, weight))
    torch.testing.assert_close(via_csr, torch.stack(layers).mean(0), atol=1e-5, rtol=1e-5)
    via_csr.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_isolated_padding_node_stays_zero():
    n = 10
    edge_index = random_graph(n, 20, seed=3)
    x = torch.randn(n, 4)
    x[0] = 0
    out = ItemGraphPropagation(2)(x, normalized_adjacency(edge_index, n))
    assert torch.all(out[0] == 0)


def test_fast_symmetric_backward_equals_dense_gradient():
    n = 40
    edge_index = random_graph(n, 120, seed=11)
    x = torch.randn(n, 6, requires_grad=True)
    weights = torch.randn(n, 6)
    (ItemGraphPropagation(2)(x, normalized_adjacency(edge_index, n)) * weights).sum().backward()
    x_dense = x.detach().clone().requires_grad_(True)
    dense = dense_normalized(edge_index, n)
    outs = [x_dense, dense @ x_dense, dense @ (dense @ x_dense)]
    (torch.stack(outs).mean(0) * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_dense.grad, atol=1e-5, rtol=1e-5)


def test_edge_dropout_keeps_the_adjacency_symmetric_and_self_loops_whole():
    torch.manual_seed(0)
    n = 40
    edge_index = torch.randint(1, n, (2, 300))
    edge_index = to_undirected(edge_index[:, edge_index[0] != edge_index[1]], num_nodes=n)
    adj = normalized_adjacency(edge_index, n)
    dropout = EdgeDropout(0.5).train()
    dropped = dropout(adj).to_dense()
    dense = adj.to_dense()
    assert torch.equal(dropped, dropped.T)
    assert torch.equal(dropped.diagonal(), dense.diagonal())
    off = ~torch.eye(n, dtype=torch.bool) & (dense != 0)
    kept = dropped[off] != 0
    assert 0.3 < kept.float().mean() < 0.7
    assert torch.allclose(dropped[off][kept], 2.0 * dense[off][kept])
    assert not torch.equal(dropout(adj).to_dense(), dropped)  # a new draw every call
    assert dropout.eval()(adj) is adj
