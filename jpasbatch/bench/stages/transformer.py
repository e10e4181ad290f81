"""OJALA foundation-model inference against a plain ``torch.nn.Transformer`` of the same size.

The peer is a *speed* reference: a different network (no token embeddings, no
wavelength bias), so its outputs cannot be compared with the model's. The
answers are checked instead against the same model run on the first objects in
batches of 8: batching, padding of absent tokens and the batched context must
not change a single output (float32 rounding aside).

Two variants at the largest size: the model in bfloat16, and its matrix
products alone -- every matmul one bf16 inference makes, with the same shapes,
replayed on random numbers without attention, normalisations or activations.
That is an upper bound on what any PyTorch implementation of this network
can reach on the machine, so the record says how far the goal is from it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jpasbatch.bench.core import BenchmarkMismatch, Outcome, torch_device
from jpasbatch.bench.stage import Context, Sizes, Stage, goal_row

N_CHECK = 32
TOLERANCE = 1e-4  # float32, other batch composition
BF16_TOLERANCE = 0.05  # bf16 weights and activations (probabilities)
CEILING = "its bf16 matrix products alone (ceiling)"


def observed_table(n: int, seed: int = 0):
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


def plain_transformer():
    """``torch.nn.Transformer`` with OJALA's blocks: 2 x (128, 16 heads, FFN 1024), 3 x FFN 2048."""
    from torch import nn

    from jpasbatch.foundation.model import FULL_SIZE

    d, h = FULL_SIZE["d_model"], FULL_SIZE["n_heads"]
    enc = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(
            d, h, FULL_SIZE["enc_ffn"], 0.1, batch_first=True, norm_first=True
        ),
        FULL_SIZE["enc_layers"],
        enable_nested_tensor=False,
    )
    dec = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(
            d, h, FULL_SIZE["dec_ffn"], 0.1, batch_first=True, norm_first=True
        ),
        FULL_SIZE["dec_layers"],
    )
    return nn.Transformer(d, h, custom_encoder=enc, custom_decoder=dec, batch_first=True).eval()


def matmul_calls(fn) -> list[tuple]:
    """The matrix products ``fn()`` makes, in order: ``(op, args)``, tensors as layouts."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    # under inference mode linear / matmul / einsum reach the dispatcher undecomposed
    products = {aten.linear.default, aten.matmul.default, aten.einsum.default}
    products |= {aten.addmm.default, aten.mm.default, aten.bmm.default, aten.baddbmm.default}
    calls = []

    def layout(a):
        if isinstance(a, torch.Tensor):
            return _Layout(a.shape, a.stride(), a.dtype)
        return [layout(x) for x in a] if isinstance(a, list | tuple) else a

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in products:
                calls.append((func, layout(list(args))))
            return func(*args, **(kwargs or {}))

    with Record():
        fn()
    return calls


class _Layout(NamedTuple):
    shape: tuple
    stride: tuple
    dtype: object


def replay(calls: list[tuple], times: int) -> None:
    """Run recorded matrix products ``times`` times on random operands of the same layout."""
    import torch

    def operand(a):
        if isinstance(a, _Layout):
            return torch.empty_strided(a.shape, a.stride, dtype=a.dtype).normal_()
        return [operand(x) for x in a] if isinstance(a, list) else a

    ops = [(f, operand(args)) for f, args in calls]
    with torch.inference_mode():
        for _ in range(times):
            for f, args in ops:
                f(*args)


def _probabilities(cols: dict) -> np.ndarray:
    from jpasbatch.catalog.schemas import CLASSES

    return np.stack([cols[f"P_{c}"] for c in CLASSES] + [cols["Z_PHOT"]], 1)


class TransformerStage(Stage):
    name = "transformer"
    title = "Foundation-model inference: OJALA transformer, all bands as context"
    unit = "objects"
    issue = 7
    goal = "at least 2,000 objects/s on 2 cores, all bands as context"
    engine = "threads"
    sizes = Sizes(tiny=(64, 256), quick=(500, 2000), full=(2000, 8000))
    survey = "one inference per survey object (joins the VAC)"
    pipeline = True
    ours_label = "FoundationPredictor.predict, fp32 (table in, VAC columns out)"
    peer_label = "torch.nn.Transformer, same blocks, fp32, forward only"
    diff_label = "max |dP|, |dz| vs the same model in batches of 8"

    def _predictor(self, ctx: Context):
        if "predictor" not in ctx.cache:
            import torch

            from jpasbatch.foundation.model import FoundationModel
            from jpasbatch.foundation.predict import FoundationPredictor
            from jpasbatch.foundation.tokens import TokenNorm, encode_table

            torch.manual_seed(0)  # untrained weights: inference costs the same
            norm = TokenNorm.fit(encode_table(observed_table(2000, seed=1)))
            ctx.cache["predictor"] = (
                FoundationPredictor(FoundationModel(), norm),
                plain_transformer(),
            )
        return ctx.cache["predictor"]

    def prepare(self, n: int, ctx: Context):
        from jpasbatch.foundation.predict import default_batch_size

        pred, plain = self._predictor(ctx)
        table = observed_table(n)
        cols, _ = pred.predict(table.slice(0, N_CHECK), batch_size=8)
        one_batch = table.slice(0, default_batch_size(torch_device()))
        return {
            "products": matmul_calls(lambda: pred.predict(one_batch, dtype="bfloat16")),
            "table": table,
            "pred": pred,
            "plain": plain,
            "ref": _probabilities(cols),
            "n_ctx": int(cols["N_CONTEXT"].max()),
        }

    def run(self, data, ctx: Context) -> Outcome:
        cols, _ = data["pred"].predict(data["table"], device=torch_device())
        return Outcome({"p": _probabilities(cols), "ref": data["ref"]})

    def peer(self, data, n: int, ctx: Context) -> Outcome:
        import torch

        from jpasbatch.foundation.predict import QUERY_TOKENS, default_batch_size

        d, dev = data["plain"].d_model, torch_device()
        plain = data["plain"].to(dev)
        gen = torch.Generator().manual_seed(0)
        batch = default_batch_size(dev)  # the same batches as ours
        with torch.inference_mode():
            for s in range(0, n, batch):
                m = min(batch, n - s)
                src = torch.randn(m, data["n_ctx"], d, generator=gen).to(dev)
                tgt = torch.randn(m, len(QUERY_TOKENS), d, generator=gen).to(dev)
                plain(src, tgt)
            if dev == "cuda":
                torch.cuda.synchronize()
        return Outcome(None)

    def compare(self, ours: Outcome, peer: Outcome, n: int, workers: int) -> float:
        return self._check(ours, TOLERANCE, "fp32")

    @staticmethod
    def _check(out: Outcome, tol: float, what: str) -> float:
        p, ref = out.answer["p"], out.answer["ref"]
        if not np.isfinite(p).all():
            raise BenchmarkMismatch(f"foundation model ({what}): non-finite outputs")
        diff = float(np.max(np.abs(p[: len(ref)] - ref)))
        if not diff <= tol:
            raise BenchmarkMismatch(
                f"foundation model ({what}) differs from itself in batches of 8 by {diff:.2e}"
            )
        return diff

    def variants(self) -> dict:
        def bf16(data, ctx: Context) -> Outcome:
            cols, _ = data["pred"].predict(data["table"], dtype="bfloat16", device=torch_device())
            return Outcome({"p": _probabilities(cols), "ref": data["ref"]})

        def check(out: Outcome, peer: Outcome, n: int):
            diff = self._check(out, BF16_TOLERANCE, "bf16")
            p, ref = out.answer["p"][:N_CHECK, :4], out.answer["ref"][:, :4]
            return diff, {"bf16_class_agreement": float(np.mean(p.argmax(1) == ref.argmax(1)))}

        def products(data, ctx: Context) -> Outcome:
            from jpasbatch.foundation.predict import default_batch_size

            batch = default_batch_size(torch_device())
            replay(data["products"], -(-data["table"].num_rows // batch))
            return Outcome(None)

        return {
            "FoundationPredictor.predict, bf16 weights and activations": (bf16, check),
            CEILING: (products, lambda out, peer, n: (None, {})),
        }

    def goal_check(self, rec: dict) -> tuple[bool | None, str]:
        row = goal_row(rec)
        per_s = {r["what"]: r["per_s"] for r in rec["rows"] if r["impl"] == "variant"}
        ceiling = per_s.pop(CEILING, None)
        best = max([row["per_s"], *per_s.values()])
        return best >= 2000, (
            f"{row['per_s']:,.0f} objects/s fp32"
            + "".join(f", {v:,.0f} bf16" for v in per_s.values())
            + f" with {row['workers']} threads at {row['n']:,} objects (OJALA: ~370/s)"
            + (
                f"; the model's bf16 matrix products alone run at {ceiling:,.0f}/s here, "
                "a ceiling for any implementation of this network on this machine"
                if ceiling
                else ""
            )
        )
