"""Foundation-model benchmark: inference throughput against a plain ``torch.nn.Transformer``."""

from __future__ import annotations

import numpy as np


def _observed_table(n: int, seed: int = 0):
    """OBSERVED-like rows with every J-PAS and external band and the morphology measured."""
    import pyarrow as pa

    from jpasbatch.catalog.schemas import BANDS, EXTERNAL_BANDS, MORPH_TYPES

    rng = np.random.default_rng(seed)
    bands = (*BANDS, *EXTERNAL_BANDS)
    scale = 10 ** (-0.4 * (rng.uniform(17, 23, n) + 48.6)) * 2.998e18 / 6000**2
    flux = scale[:, None] * rng.lognormal(0, 0.3, (n, len(bands)))
    cols = {"OBJECT_ID": np.arange(n, dtype=np.int64)}
    cols |= {f"FLUX_{b}": flux[:, j].astype(np.float32) for j, b in enumerate(bands)}
    cols |= {f"FLUX_RELERR_{b}": rng.uniform(0.02, 0.3, n).astype(np.float32) for b in bands}
    cols["CLASS_STAR"] = rng.random(n).astype(np.float32)
    cols["MORPH_TYPE"] = rng.choice(MORPH_TYPES, n)
    return pa.table(cols)


def _plain_transformer():
    """``torch.nn.Transformer``, same blocks: 2 x (128, 16 heads, FFN 1024) + 3 x FFN 2048."""
    from torch import nn

    d = 128
    enc = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(d, 16, 1024, 0.1, batch_first=True, norm_first=True),
        2,
        enable_nested_tensor=False,
    )
    dec = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(d, 16, 2048, 0.1, batch_first=True, norm_first=True), 3
    )
    return nn.Transformer(d, 16, custom_encoder=enc, custom_decoder=dec, batch_first=True).eval()


def bench_foundation(quick: bool) -> dict:
    """Full-size model, all 67 observational tokens as context, fp32 and bf16, vs nn.Transformer."""
    import torch

    from benchmarks.run import summary_of, timed
    from jpasbatch.catalog.schemas import CLASSES
    from jpasbatch.foundation.model import FoundationModel, count_parameters
    from jpasbatch.foundation.predict import QUERY_TOKENS, FoundationPredictor
    from jpasbatch.foundation.tokens import TokenNorm, encode_table

    n = 400 if quick else 20_000
    batch = 1024
    torch.manual_seed(0)
    table = _observed_table(n)
    model = FoundationModel()
    pred = FoundationPredictor(model, TokenNorm.fit(encode_table(table)))
    repeats = 1 if quick else 2
    t32, (c32, a32) = timed(lambda: pred.predict(table, batch_size=batch), repeats)
    t16, (c16, a16) = timed(
        lambda: pred.predict(table, batch_size=batch, dtype="bfloat16"), repeats
    )
    plain = _plain_transformer()
    n_ctx = int(c32["N_CONTEXT"][0])
    src = torch.randn(batch, n_ctx, 128)
    tgt = torch.randn(batch, len(QUERY_TOKENS), 128)

    def peer():
        with torch.inference_mode():
            for s in range(0, n, batch):
                m = min(batch, n - s)
                plain(src[:m], tgt[:m])

    tpe, _ = timed(peer, repeats)
    p32 = np.stack([c32[f"P_{c}"] for c in CLASSES], 1)
    p16 = np.stack([c16[f"P_{c}"] for c in CLASSES], 1)
    dz = np.abs(c16["Z_PHOT"] - c32["Z_PHOT"]) / (1 + c32["Z_PHOT"])
    e32, e16 = a32["EMBEDDING"], a16["EMBEDDING"]
    cos = np.sum(e32 * e16, 1) / (np.linalg.norm(e32, axis=1) * np.linalg.norm(e16, axis=1))
    ours, bf16, base = summary_of(t32, n), summary_of(t16, n), summary_of(tpe, n)
    best = max(ours["per_s"], bf16["per_s"])
    return {
        "name": "foundation",
        "title": f"Foundation model inference: full size ({count_parameters(model) / 1e6:.2f} M "
        f"parameters), {n_ctx} context tokens, {len(QUERY_TOKENS)} queries, {n:,} objects, "
        f"{torch.get_num_threads()} threads",
        "goal": "at least 2,000 objects/s on 2 cores (OJALA: ~370/s on a consumer CPU)",
        "goal_met": bool(best >= 2000),
        "rows": [
            {"what": "FoundationPredictor.predict, fp32 (table in, VAC columns out)", **ours},
            {"what": "FoundationPredictor.predict, bf16 weights and activations", **bf16},
            {"what": "torch.nn.Transformer, same blocks, fp32, forward only (peer)", **base},
        ],
        "ratio_to_peer": ours["per_s"] / base["per_s"],
        "bf16_ratio_to_peer": bf16["per_s"] / base["per_s"],
        "bf16_class_agreement": float(np.mean(p16.argmax(1) == p32.argmax(1))),
        "bf16_max_abs_dprob": float(np.max(np.abs(p16 - p32))),
        "bf16_median_dz_over_1pz": float(np.median(dz)),
        "bf16_p99_dz_over_1pz": float(np.quantile(dz, 0.99)),
        "bf16_min_embedding_cosine": float(np.min(cos)),
    }
