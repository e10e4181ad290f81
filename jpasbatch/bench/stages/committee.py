"""ANN committee inference: the vectorised 8-member module against a naive per-member loop."""

from __future__ import annotations

import numpy as np

from jpasbatch.bench.core import BenchmarkMismatch, Outcome, torch_device
from jpasbatch.bench.stage import Context, Sizes, Stage, goal_row

TOLERANCE = 1e-4
BATCH = 65_536


def member_networks(model) -> list:
    """The committee as K separate ``nn.Sequential`` networks (the naive peer)."""
    import torch
    from torch import nn

    nets = []
    for k in range(model.members):
        layers = []
        for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[k].T)
                lin.bias.copy_(b[k, 0])
            layers += [lin, nn.ReLU()] if i < len(model.weights) - 1 else [lin]
        nets.append(nn.Sequential(*layers).eval())
    return nets


def member_loop(nets: list, scaler, flux: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Median of the members' softmax probabilities, renormalised: one member at a time."""
    import torch

    x, _ = scaler.transform(flux)
    with torch.no_grad():
        members = [
            torch.cat(
                [
                    torch.softmax(net.to(device)(torch.from_numpy(x[s : s + BATCH]).to(device)), -1)
                    for s in range(0, len(x), BATCH)
                ]
            ).cpu()
            for net in nets
        ]
    p = np.median(torch.stack(members).double().numpy(), axis=0)
    return p / p.sum(1, keepdims=True)


class CommitteeStage(Stage):
    name = "committee"
    title = "ANN committee inference: 8 members x (8 x 200 ReLU), ANN1 features"
    unit = "objects"
    issue = 5
    goal = "at least 20,000 objects/s on 2 cores (batch of 1e6 objects)"
    engine = "threads"
    sizes = Sizes(tiny=(500, 2000), quick=(20_000, 100_000), full=(100_000, 1_000_000))
    peer_cap = 250_000  # the loop's throughput is flat beyond a few batches
    survey = "one inference per survey object (inside the VAC stage)"
    ours_label = "vectorised committee, fp32 (batched matmul)"
    peer_label = "loop over 8 nn.Sequential members, fp32"
    diff_label = "max |dP|"

    def prepare(self, n: int, ctx: Context):
        from jpasbatch.bench.data import committee_classifier

        flux = np.random.default_rng(0).lognormal(0, 0.5, (n, 60)).astype(np.float32)
        if "clf" not in ctx.cache:
            clf = committee_classifier(flux[:50_000])
            ctx.cache["clf"] = (clf, member_networks(clf.model))
        clf, nets = ctx.cache["clf"]
        return {"flux": flux, "clf": clf, "nets": nets}

    def run(self, data, ctx: Context) -> Outcome:
        return Outcome(data["clf"].predict_proba(data["flux"], device=torch_device())[0])

    def peer(self, data, n: int, ctx: Context) -> Outcome:
        nets, scaler = data["nets"], data["clf"].scaler
        return Outcome(member_loop(nets, scaler, data["flux"][:n], torch_device()))

    def compare(self, ours: Outcome, peer: Outcome, n: int, workers: int) -> float:
        diff = float(np.max(np.abs(ours.answer[:n] - peer.answer)))
        if not diff <= TOLERANCE:
            raise BenchmarkMismatch(f"vectorised committee differs from the member loop by {diff}")
        return diff

    def variants(self) -> dict:
        import torch

        def bf16(data, ctx: Context) -> Outcome:
            clf, dev = data["clf"], torch_device()
            return Outcome(clf.predict_proba(data["flux"], dtype=torch.bfloat16, device=dev)[0])

        def check(out: Outcome, peer: Outcome, n: int):
            agree = float(np.mean(out.answer[:n].argmax(1) == peer.answer.argmax(1)))
            if agree < 0.95:
                raise BenchmarkMismatch(f"bf16 committee: argmax agrees on {agree:.3f} only")
            return float(np.max(np.abs(out.answer[:n] - peer.answer))), {
                "bf16_argmax_agreement": agree
            }

        return {"vectorised committee, bf16 matmuls": (bf16, check)}

    def goal_check(self, rec: dict) -> tuple[bool | None, str]:
        row = goal_row(rec)
        bf = [r for r in rec["rows"] if r["impl"] == "variant"]
        best = max([row["per_s"]] + [r["per_s"] for r in bf])
        return best >= 20_000, (
            f"{row['per_s']:,.0f} objects/s fp32"
            + (f", {bf[0]['per_s']:,.0f} bf16" if bf else "")
            + f" with {row['workers']} threads at {row['n']:,} objects"
        )
