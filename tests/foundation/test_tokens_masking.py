"""Tokens as OJALA normalises them, and the four masking rules."""

import numpy as np
import pyarrow as pa
import pytest

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.foundation.masking import label_mask, sample_masks, token_weights
from jpasbatch.foundation.tokens import (
    TokenNorm,
    encode_table,
    names,
    resolve_context,
    token_index,
    vocabulary,
)
from jpasbatch.physics.filters import jpas
from jpasbatch.physics.photometry import flux_to_ab


def test_vocabulary_and_contexts():
    v = vocabulary()
    assert len(v) == 60 + 5 + 2 + 2 + 5
    assert [t.name for t in v if t.kind == "class"] == ["MORPH_TYPE", "CLASS"]
    assert {t.name for t in v if t.kind == "mag"} == {
        "uJPAS", "gSDSS", "rSDSS", "iSDSS", "DECAM_G", "DECAM_R", "DECAM_Z", "WISE_W1", "WISE_W2",
    }  # fmt: skip
    ctx = resolve_context("T1+broad+morph")
    assert len(ctx) == 13 + 6 + 2 and "J0410" in ctx and "WISE_W2" in ctx and "J0390" not in ctx
    assert not set(resolve_context("all")) & set(resolve_context("labels"))
    with pytest.raises(ValueError, match="unknown context"):
        resolve_context("T9")


def test_encoding_against_hand_computation(mock_dir):
    import pyarrow.parquet as pq

    table = pq.read_table(mock_dir / "part-00000.parquet")
    tok = encode_table(table)
    f = {b: table[f"FLUX_{b}"].to_numpy().astype(float) for b in ("J0660", "iSDSS", "rSDSS")}
    e = {b: table[f"FLUX_RELERR_{b}"].to_numpy().astype(float) for b in ("J0660", "iSDSS")}
    j, i = token_index("J0660"), token_index("rSDSS")
    ok = tok.present[:, j]
    # narrow bands: flux relative to iSDSS, with the ratio's error
    np.testing.assert_allclose(tok.values[ok, j], (f["J0660"] / f["iSDSS"])[ok], rtol=1e-5)
    ratio = f["J0660"] / f["iSDSS"]
    err = np.abs(ratio) * np.hypot(e["J0660"], e["iSDSS"])
    np.testing.assert_allclose(tok.errors[ok, j], err[ok], rtol=1e-4)
    # broad bands: asinh magnitudes, equal to AB magnitudes at high S/N
    bright = tok.present[:, i] & (f["rSDSS"] > 0)
    ab = flux_to_ab(f["rSDSS"][bright], jpas()["rSDSS"].pivot_wavelength)
    high = ab < 20  # 7 mag above the softening: 1e-4 mag apart
    np.testing.assert_allclose(tok.values[bright, i][high], ab[high], atol=3e-4)
    # labels: class index, log10 Teff of stars, log10 EW (floored) of galaxies
    y = tok.values[:, token_index("CLASS")].astype(int)
    assert [CLASSES[k] for k in y] == table["CLASS"].to_pylist()
    star = tok.present[:, token_index("TEFF")]
    assert (np.array(table["CLASS"].to_pylist())[star] == "STAR").all()
    assert tok.present[:, token_index("MORPH_TYPE")].all()


def test_missing_columns_are_absent_tokens():
    n = 4
    t = pa.table(
        {
            "FLUX_iSDSS": np.ones(n),
            "FLUX_RELERR_iSDSS": np.full(n, 0.1),
            "FLUX_J0660": [1.0, np.nan, 2.0, 3.0],
            "FLUX_RELERR_J0660": np.full(n, 0.1),
        }
    )
    tok = encode_table(t)
    present = dict(zip(names(), tok.present.any(0), strict=True))
    assert present["J0660"] and present["iSDSS"] and not present["J0670"] and not present["Z"]
    assert tok.present[:, token_index("J0660")].tolist() == [True, False, True, True]
    norm = TokenNorm.fit(tok)
    assert TokenNorm.from_dict(norm.to_dict()).loc.tolist() == norm.loc.tolist()


def _presence(b, rng, missing=0.3):
    return rng.random((b, len(vocabulary()))) > missing


def test_masking_rules():
    rng = np.random.default_rng(0)
    present = _presence(2000, rng)
    w = token_weights(present.mean(0), label_boost=3.0)
    m = sample_masks(present, w, token_weights(present.mean(0)), rng, n_targets=5, min_context=5)
    is_target = np.zeros_like(present)
    np.put_along_axis(is_target, m.targets, m.target_valid, axis=1)
    # rule 3: five distinct, present targets per object
    assert m.targets.shape == (2000, 5) and m.target_valid.all()
    assert (is_target.sum(1) == 5).all() and not (is_target & ~present).any()
    # targets never in the context; the context only holds present tokens
    assert not (is_target & m.context).any() and not (m.context & ~present).any()
    # rule 2: at least five context tokens
    assert (m.context.sum(1) >= 5).all()
    # rule 1: with a label target, no label in the context; without, labels may appear
    labels = label_mask()
    label_target = (is_target & labels).any(1)
    assert not (m.context[label_target] & labels).any()
    assert (m.context[~label_target] & labels).any()


def test_inverse_frequency_token_sampling():
    """Rule 4: a token present half as often is drawn as a target twice as often when present."""
    rng = np.random.default_rng(1)
    b, v = 40_000, len(vocabulary())
    present = np.ones((b, v), bool)
    rare = token_index("J0500")
    present[: b // 2, rare] = False  # half the objects lack it
    freq = present.mean(0)
    w = token_weights(freq)
    assert w[rare] == pytest.approx(2 * w[token_index("J0510")])
    m = sample_masks(present, w, w, rng, n_targets=1, full_context=1.0)
    has = present[:, rare]
    picked_rare = (m.targets[has, 0] == rare).mean()
    picked_common = (m.targets[has, 0] == token_index("J0510")).mean()
    assert picked_rare / picked_common == pytest.approx(2.0, rel=0.15)
    # and rare tokens are masked out of the context less often
    m = sample_masks(present, w, w, rng, n_targets=1, full_context=0.0)
    kept_rare = m.context[has, rare].mean()
    kept_common = m.context[has, token_index("J0510")].mean()
    assert kept_rare > kept_common
