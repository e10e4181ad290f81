"""Architecture: sizes, the relative bias, and absent tokens changing nothing."""

import math

import numpy as np
import pytest
import torch

from jpasbatch.foundation.model import FULL_SIZE, FoundationModel, RelativeBias, count_parameters
from jpasbatch.foundation.tokens import token_index, vocabulary

from .conftest import TINY

V = len(vocabulary())
QUERY = torch.tensor([token_index(n) for n in ("CLASS", "Z", "TEFF", "EW_HALPHA")])


def _batch(b, seed=0, missing=0.3):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(b, V, generator=g)
    for name in ("MORPH_TYPE", "CLASS"):
        values[:, token_index(name)] = torch.randint(0, 4, (b,), generator=g).float()
    errors = torch.rand(b, V, generator=g)
    present = torch.rand(b, V, generator=g) > missing
    return values, errors, present


def test_full_size_model_shapes_and_parameter_count():
    torch.manual_seed(0)
    model = FoundationModel()
    assert model.hparams == FULL_SIZE
    assert len(model.encoder) == 2 and len(model.decoder) == 3
    assert model.encoder[0].ffn[0].out_features == 1024
    assert model.decoder[0].ffn[0].out_features == 2048
    assert model.encoder[0].attn.h == 16
    # 2.72 M parameters: the blocks' 2.63 M (as a torch.nn.Transformer of these sizes)
    # plus embeddings, bias kernels and per-token heads; OJALA quotes ~4.6 M
    n = count_parameters(model)
    assert 2.6e6 < n < 2.9e6
    blocks = sum(count_parameters(m) for m in (*model.encoder, *model.decoder))
    enc = torch.nn.TransformerEncoderLayer(128, 16, 1024)
    dec = torch.nn.TransformerDecoderLayer(128, 16, 2048)
    assert blocks == 2 * count_parameters(enc) + 3 * count_parameters(dec)
    values, errors, present = _batch(3)
    model.eval()
    out, emb = model(torch.arange(V), values, errors, present, QUERY)
    assert out.shape == (3, 4, 4) and emb.shape == (3, 128)
    assert torch.isfinite(out).all() and torch.isfinite(emb).all()


def test_relative_bias_is_a_gaussian_of_the_wavelength_separation():
    torch.manual_seed(1)
    rb = RelativeBias(4)
    with torch.no_grad():
        rb.offset.uniform_(-1, 1)
        rb.amplitude.uniform_(-1, 1)
        rb.log_width.uniform_(math.log(0.12), math.log(0.5))
    u = torch.linspace(0, 1, 15)
    kind = torch.tensor([0] * 6 + [1] * 6 + [2] * 3)
    u[kind == 2] = 0.0
    dense = rb(u, kind, u, kind)  # (H, L, L)
    s = rb.log_width.exp()[:, kind][:, :, kind]
    off, amp = rb.offset[:, kind][:, :, kind], rb.amplitude[:, kind][:, :, kind]
    gauss = off + amp * torch.exp(-((u[:, None] - u[None]) ** 2) / (2 * s**2))
    bands = (kind[:, None] < 2) & (kind[None] < 2)
    # the truncated cosine series of the Gaussian: close, not exact
    assert (dense - gauss)[:, bands].abs().max() < 0.05 * (1 + amp.abs().max())
    # a pair involving a non-band token gets a constant per head and type pair
    other = dense[:, :6, 12:]
    assert torch.allclose(other, other[:, :1, :1].expand_as(other), atol=1e-6)
    # it depends on the separation only: shifting every wavelength changes nothing
    shifted = rb(u + 0.1 * (kind < 2), kind, u + 0.1 * (kind < 2), kind)
    assert torch.allclose(shifted, dense, atol=1e-5)


def test_absent_tokens_change_nothing():
    """Masking a token equals leaving it out of the sequence; its value is never read."""
    torch.manual_seed(2)
    model = FoundationModel(**TINY).eval()
    values, errors, present = _batch(5, missing=0.0)
    keep = torch.ones(V, dtype=torch.bool)
    keep[[token_index(n) for n in ("J0660", "J0670", "WISE_W1", "CLASS_STAR", "Z")]] = False
    masked = present & keep
    ids = torch.arange(V)
    with torch.no_grad():
        out_m, emb_m = model(ids, values, errors, masked, QUERY)
        compact = ids[keep]
        out_c, emb_c = model(compact, values[:, keep], errors[:, keep], masked[:, keep], QUERY)
        garbage, noisy = values.clone(), errors.clone()
        garbage[:, ~keep], noisy[:, ~keep] = 1e6, 1e3
        out_g, _ = model(ids, garbage, noisy, masked, QUERY)
    torch.testing.assert_close(out_m, out_c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb_m, emb_c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_m, out_g, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("per_row_targets", [False, True])
def test_inference_bias_path_equals_the_training_path(per_row_targets):
    """Without gradients the relative bias is an additive mask; with them, extra q / k
    features (fast backward). Both must give the same outputs."""
    torch.manual_seed(5)
    model = FoundationModel(**TINY).eval()
    values, errors, present = _batch(6, missing=0.3)
    ids = torch.arange(V)
    targets = QUERY[None].expand(6, -1) if per_row_targets else QUERY
    with torch.no_grad():
        out_i, emb_i = model(ids, values, errors, present, targets)
    out_t, emb_t = model(ids, values, errors, present, targets)
    torch.testing.assert_close(out_i, out_t.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb_i, emb_t.detach(), atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(3)
    model = FoundationModel(**TINY)
    values, errors, present = _batch(8)
    targets = torch.randint(0, V, (8, 5))
    out, emb = model(torch.arange(V), values, errors, present, targets)
    (out.sum() + emb.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    # per-token heads / embeddings of tokens absent from this batch may be zero, and
    # the bias widths start without a gradient (their amplitudes start at 0)
    allowed = ("head_", "class_emb", "token_emb")
    assert not [n for n in missing if not n.startswith(allowed) and "log_width" not in n]
    assert model.enc_bias.amplitude.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_reduced_precision_runs(dtype):
    torch.manual_seed(4)
    model = FoundationModel(**TINY).eval()
    values, errors, present = _batch(16)
    with torch.no_grad():
        ref, _ = model(torch.arange(V), values, errors, present, QUERY)
        low, _ = model.to(dtype)(
            torch.arange(V), values.to(dtype), errors.to(dtype), present, QUERY
        )
    assert np.abs((low.float() - ref).numpy()).max() < 0.1


def test_a_query_does_not_depend_on_the_other_queries():
    """Which labels are asked for must not leak into the answer (see the model docstring)."""
    torch.manual_seed(5)
    model = FoundationModel(**TINY).eval()
    values, errors, present = _batch(6)
    ids = torch.arange(V)
    with torch.no_grad():
        alone, _ = model(ids, values, errors, present, QUERY[:1])
        together, _ = model(ids, values, errors, present, QUERY)
        per_object = QUERY[[0, 2, 3]].expand(6, 3)
        mixed, _ = model(ids, values, errors, present, per_object)
    torch.testing.assert_close(alone[:, 0], together[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone[:, 0], mixed[:, 0], atol=1e-5, rtol=1e-5)
