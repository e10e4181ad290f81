"""The training objective as one module (one forward pass, so DDP sees every parameter).

``L = L_sup + L_DA``: ``L_sup`` sums the losses of every valid target token of
the batch and divides by their number (OJALA Eq. 1: no weights between the
regression, class and morphology terms; each contributes by how often its
tokens are drawn): cross-entropy for ``CLASS`` and ``MORPH_TYPE``, the
heteroscedastic NLL for the others (standardised units; ``Z`` on
``dz / (1 + z)``). ``L_DA`` is the weighted MMD of
:func:`jpasbatch.foundation.losses.domain_adaptation_loss` between the
embeddings of a mock batch and of an unlabelled observed batch, both with their
full observational context (what inference sees).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jpasbatch.foundation.losses import Reweighter, domain_adaptation_loss, gaussian_nll
from jpasbatch.foundation.model import N_OUT, FoundationModel, split_outputs
from jpasbatch.foundation.tokens import token_index, vocabulary


class Objective(nn.Module):
    """Model (+ reweighting MLP) and the loss of one batch.

    Parameters
    ----------
    model
        The foundation model.
    domain_adaptation
        Keyword arguments of :func:`domain_adaptation_loss` (``lambda_mmd``...)
        plus ``tau``; ``None`` trains without it.
    """

    def __init__(
        self, model: FoundationModel, domain_adaptation: dict | None = None, beta: float = 0.0
    ) -> None:
        super().__init__()
        self.model = model
        da = dict(domain_adaptation or {})
        tau = da.pop("tau", 1.0)
        self.da = da if domain_adaptation is not None else None
        self.reweighter = (
            Reweighter(model.hparams["d_model"], tau=tau) if domain_adaptation is not None else None
        )
        n_cls = torch.tensor([len(t.classes) for t in vocabulary()])
        self.register_buffer("n_classes", n_cls, persistent=False)
        self.z_id = token_index("Z")
        self.beta = beta

    def forward(
        self,
        ids: torch.Tensor,
        values: torch.Tensor,
        errors: torch.Tensor,
        context: torch.Tensor,
        targets: torch.Tensor,
        valid: torch.Tensor,
        y: torch.Tensor,
        y_err: torch.Tensor,
        source: tuple[torch.Tensor, ...] | None = None,
        target_domain: tuple[torch.Tensor, ...] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss and its parts.

        Parameters
        ----------
        ids
            ``(V,)`` sequence ids of the value columns.
        values, errors, context
            ``(B, V)`` standardised tokens and the context mask.
        targets, valid
            ``(B, T)`` target ids and which of them count.
        y, y_err
            ``(B, T)`` target values (class indices for categorical tokens) and errors.
        source, target_domain
            ``(values, errors, present)`` of the mock and observed domain batches
            (with domain adaptation only).
        """
        out, _ = self.model(ids, values, errors, context, targets)
        n_cls = self.n_classes[targets]
        is_cls = n_cls > 0
        is_z = targets == self.z_id
        mu, sigma = split_outputs(out.float())
        z_err = y_err / (1 + y.clamp(min=0))
        nll = gaussian_nll(y, mu, sigma, y_err)
        nll_z = gaussian_nll(y, mu, sigma, z_err, redshift=True)
        if self.beta:  # beta-NLL: each term x its (detached) variance^beta
            nll = nll * (sigma**2 + y_err**2).detach() ** self.beta
            nll_z = nll_z * (sigma**2 + z_err**2).detach() ** self.beta
        # categorical tokens use their first n_classes outputs; other rows keep all
        # four (finite, ignored below: all -inf rows would put NaN in the gradient)
        n_used = torch.where(is_cls, n_cls, torch.full_like(n_cls, N_OUT))
        logits = out.float().masked_fill(
            torch.arange(N_OUT, device=out.device) >= n_used[..., None], float("-inf")
        )
        safe = torch.where(is_cls, y, torch.zeros_like(y)).long().clamp(min=0)
        ce = F.cross_entropy(logits.reshape(-1, N_OUT), safe.reshape(-1), reduction="none")
        ce = ce.view_as(y)
        per = torch.where(is_cls, ce, torch.where(is_z, nll_z, nll))
        per = torch.where(valid, per, torch.zeros_like(per))
        n_valid = valid.sum().clamp(min=1)
        loss = per.sum() / n_valid
        parts = {
            "sup": loss.detach(),
            "ce": _mean(ce, valid & is_cls),
            "nll_z": _mean(nll_z, valid & is_z),
            "nll": _mean(nll, valid & ~is_cls & ~is_z),
        }
        if self.reweighter is not None and source is not None and target_domain is not None:
            hs = self._embed(ids, *source)
            ht = self._embed(ids, *target_domain)
            w = self.reweighter(ht)
            da, da_parts = domain_adaptation_loss(hs, ht, w, **self.da)
            loss = loss + da
            parts |= {"da": da.detach()} | {k: torch.tensor(v) for k, v in da_parts.items()}
        return loss, parts

    def _embed(self, ids, values, errors, present) -> torch.Tensor:
        memory, _ = self.model.encode(ids, values, errors, present)
        return self.model.embedding(memory, present).float()


def _mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    m = m.to(x.dtype)
    return ((x * m).sum() / m.sum().clamp(min=1)).detach()
