import pytest
import torch
import torch.nn.functional as F

from model.fusion import AttentionFusion, make_fusion
from model.losses import full_softmax_cross_entropy, info_nce
from model.session_encoder import SessionEncoder


def encoder(graph: bool = True, **kw) -> SessionEncoder:
    torch.manual_seed(0)
    return SessionEncoder(num_items=20, dim=8, max_len=6, ffn_dim=16, dropout=0.0,
                          use_graph_view=graph, **kw).eval()


@pytest.mark.parametrize("graph", [True, False])
def test_query_shapes(graph):
    enc = encoder(graph)
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    rows = torch.randn(2, 4, 8) if graph else None
    out = enc(ids, rows, torch.tensor([3, 2]))
    assert out.shape == (2, 16 if graph else 8)


def test_causal_prefix_vectors_ignore_later_items_and_padding():
    enc = encoder()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    rows = torch.randn(1, 5, 8)
    full_id, full_graph = enc.encode_views(ids, rows)
    prefix_id, prefix_graph = enc.encode_views(ids[:, :3], rows[:, :3])
    torch.testing.assert_close(full_id[:, :3], prefix_id, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full_graph[:, :3], prefix_graph, atol=1e-5, rtol=1e-5)
    # the session vector of a 3-item session equals the third position of a longer one
    padded = torch.tensor([[1, 2, 3, 0, 0]])
    padded_rows = rows.clone()
    padded_rows[:, 3:] = 0
    query = enc(padded, padded_rows, torch.tensor([3]))
    torch.testing.assert_close(query, enc.fuse(full_id[:, 2], full_graph[:, 2]),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("graph", "shared"), [(True, False), (True, True), (False, False)])
def test_inference_at_the_last_position_equals_the_full_pass(graph, shared):
    """Eval mode computes only each session's last position (and a shared transformer reads
    both views in one call); the query equals that position of the full per-position pass."""
    enc = encoder(graph, share_transformer=shared)
    for parameter in enc.parameters():  # away from the zero-initialised gates
        torch.nn.init.normal_(parameter, std=0.3)
    lengths = torch.tensor([1, 6, 3, 2, 5])
    padding = torch.arange(6)[None] >= lengths[:, None]
    ids = torch.randint(1, 21, (5, 6)).masked_fill(padding, 0)
    rows = torch.randn(5, 6, 8).masked_fill(padding[..., None], 0) if graph else None
    with torch.no_grad():
        h_id, h_graph = enc.encode_views(ids, rows)
        last = torch.arange(5), lengths - 1
        expected = enc.fuse(h_id[last], None if h_graph is None else h_graph[last])
        torch.testing.assert_close(enc(ids, rows, lengths), expected, atol=1e-5, rtol=1e-5)


def test_too_long_sequence_is_rejected():
    with pytest.raises(ValueError, match="max_len"):
        encoder()(torch.ones(1, 7, dtype=torch.long), torch.zeros(1, 7, 8), torch.tensor([7]))


def test_attention_fusion_starts_as_average_and_learns():
    fusion = AttentionFusion(8)
    x, y = torch.randn(4, 8), torch.randn(4, 8)
    torch.testing.assert_close(fusion(x, y), (x + y) / 2)
    opt = torch.optim.SGD(fusion.parameters(), lr=1.0)
    (fusion(x, y) - x).pow(2).sum().backward()
    opt.step()
    assert not torch.allclose(fusion(x, y), (x + y) / 2)


@pytest.mark.parametrize("kind", ["attention", "mlp", "add"])
def test_fusions_keep_shape(kind):
    assert make_fusion(kind, 8)(torch.randn(3, 8), torch.randn(3, 8)).shape == (3, 8)


@pytest.mark.parametrize("fusion", ["attention", "mlp", "add"])
def test_inference_fusion_equals_the_two_fusions(fusion):
    torch.manual_seed(0)
    encoder = SessionEncoder(num_items=30, dim=16, max_len=6, fusion=fusion).eval()
    with torch.no_grad():
        for parameter in encoder.parameters():  # the gates' output layers start at zero
            parameter.add_(0.3 * torch.randn_like(parameter))
    h_id, h_graph = torch.randn(5, 16), torch.randn(5, 16)
    fused = encoder.inference_fusion()(h_id, h_graph)
    torch.testing.assert_close(fused, encoder.fuse(h_id, h_graph), atol=1e-6, rtol=1e-5)
    if fusion != "add":  # the views are told apart
        assert not torch.allclose(fused, encoder.fuse(h_graph, h_id))


def test_shared_transformer_is_one_module():
    enc = encoder(share_transformer=True)
    assert enc.graph_transformer is enc.id_transformer


def test_info_nce_prefers_aligned_views():
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    aligned = info_nce(z, z + 0.01 * torch.randn(16, 8), 0.2)
    shuffled = info_nce(z, torch.randn(16, 8), 0.2)
    assert aligned < shuffled


def test_info_nce_hand_computed_for_two_samples():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # anchor 0: positive sim 1/τ, negatives: z1[1]·z1[0]=0, z2[1]·z1[0]=0
    tau = 0.5
    expected = -torch.log(torch.exp(torch.tensor(2.0)) / (torch.exp(torch.tensor(2.0)) + 2))
    torch.testing.assert_close(info_nce(z1, z2, tau), expected)


@pytest.mark.parametrize("rows", [1, 7, 64])
def test_chunked_cross_entropy_equals_the_library_one(rows):
    torch.manual_seed(rows)
    query = torch.randn(rows, 8, requires_grad=True)
    table = torch.randn(30, 8, requires_grad=True)
    targets = torch.randint(0, 30, (rows,))
    chunked = full_softmax_cross_entropy(query, table, targets, max_logits=50)  # chunks of 1 row
    grads = torch.autograd.grad(chunked, (query, table))
    reference = F.cross_entropy(query @ table.T, targets)
    expected = torch.autograd.grad(reference, (query, table))
    torch.testing.assert_close(chunked, reference)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_packed_inference_checks_its_layout():
    enc = encoder()
    with pytest.raises(ValueError, match="packed tokens"):
        enc.forward_packed(torch.tensor([1, 2, 3]), torch.zeros(3, 8), torch.tensor([2, 2]))
    with pytest.raises(ValueError, match="at least one item"):
        enc.forward_packed(torch.tensor([1, 2]), torch.zeros(2, 8), torch.tensor([2, 0]))


@pytest.mark.parametrize("shared", [False, True])
def test_last_views_in_training_match_the_full_pass_and_its_gradients(shared):
    """Training's contrastive views use the packed last-position path: without dropout it gives
    the full pass's last positions, and the same gradients."""
    enc = encoder(share_transformer=shared).train()  # dropout 0
    for parameter in enc.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    params = [p for p in enc.parameters() if p.requires_grad]
    lengths = torch.tensor([1, 6, 3, 2, 5])
    valid = torch.arange(6)[None] < lengths[:, None]
    ids = torch.randint(1, 21, (5, 6)).masked_fill(~valid, 0)
    rows = torch.randn(5, 6, 8).masked_fill(~valid[..., None], 0)
    weights = torch.randn(2, 5, 8)

    h_id, h_graph = enc.encode_views(ids, rows)
    last = torch.arange(5), lengths - 1
    expected = (h_id[last], h_graph[last])
    expected_grads = torch.autograd.grad((expected[0] * weights[0]).sum()
                                         + (expected[1] * weights[1]).sum(), params,
                                         allow_unused=True)
    got = enc.last_views(ids[valid], rows[valid], lengths)
    assert got[1] is not None
    grads = torch.autograd.grad((got[0] * weights[0]).sum() + (got[1] * weights[1]).sum(),
                                params, allow_unused=True)
    for value, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(value, reference, atol=1e-5, rtol=1e-5)
    for grad, reference in zip(grads, expected_grads, strict=True):
        if reference is None:
            assert grad is None or not grad.any()
        else:
            torch.testing.assert_close(grad, reference, atol=1e-4, rtol=1e-4)


def test_last_views_apply_dropout_in_training_only():
    torch.manual_seed(0)
    enc = SessionEncoder(num_items=20, dim=8, max_len=6, ffn_dim=16, dropout=0.5)
    ids, rows, lengths = torch.tensor([1, 2, 3, 4]), torch.randn(4, 8), torch.tensor([3, 1])
    first, second = enc.train().last_views(ids, rows, lengths)[0], enc.last_views(ids, rows,
                                                                                   lengths)[0]
    assert not torch.allclose(first, second)
    enc.eval()
    torch.testing.assert_close(enc.last_views(ids, rows, lengths)[0],
                               enc.last_views(ids, rows, lengths)[0])
