"""The OJALA encoder-decoder transformer (Appendix A) as a plain ``nn.Module``.

* **Physics-aware embeddings**: a learnable embedding per token type, plus an
  MLP of the filter metadata (log central wavelength scaled to [0, 1],
  broad-band flag, is-a-band flag), plus the token's measurement: an MLP of
  (standardised value, log error) for real-valued tokens, a class embedding for
  categorical ones. Errors therefore travel with every context token.
* **Relative position bias**: no positional encoding; every attention logit
  gets ``c + a exp(-(dlog lambda)^2 / 2 s^2)`` with a learnable (c, a, s) per
  head and per pair of token types (narrow/medium band, broad band, other), so
  nearby filters can attend to each other more (or less) per head.
* **Encoder** (2 blocks: 16 heads, FFN 1024, dropout 0.1) over the context
  tokens; absent tokens are masked out of every attention, so the result does
  not depend on them (the model can also be run on only the present tokens: the
  same numbers, see ``tests/foundation``).
* **Decoder** (3 blocks: 16 heads, FFN 2048): one query per target token (its
  type embedding + metadata, no value), several targets per pass (multi-token
  prediction), cross-attention to the encoder output with the wavelength bias.
  The queries do not attend to each other: which labels an object *has*
  depends on its class (stars have Teff, galaxies line widths), so a query set
  drawn from the present tokens tells the class away; a decoder that mixes its
  queries learns that shortcut and fails at inference, where every label is
  asked for at once. Each query's self-attention is restricted to itself, so a
  token's prediction does not depend on what else is asked.
* **Heads**: one linear map per token type: (mean, raw sigma) for real-valued
  tokens (sigma = softplus + 1e-3), logits for categorical ones.

Pre-LayerNorm blocks (stable from the first step). ``embedding`` is the mean of
the final encoder states over the present tokens: the object's embedding (VAC,
domain adaptation, fine-tuning).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jpasbatch.foundation.tokens import vocabulary

#: OJALA's sizes (DESIGN.md item 3, Appendix A.1).
FULL_SIZE = {
    "d_model": 128,
    "n_heads": 16,
    "enc_layers": 2,
    "enc_ffn": 1024,
    "dec_layers": 3,
    "dec_ffn": 2048,
    "dropout": 0.1,
}
N_OUT = 4  # (mean, sigma) or up to 4 class logits
N_TYPES = 3  # narrow/medium band, broad band, other


def token_metadata() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per token: metadata (V, 3), type (V,), log-wavelength in [0, 1] (V,), n_classes (V,)."""
    vocab = vocabulary()
    lam = np.array([t.wavelength for t in vocab])
    band = np.isfinite(lam)
    loglam = np.zeros(len(vocab))
    lo, hi = np.log(lam[band].min()), np.log(lam[band].max())
    loglam[band] = (np.log(lam[band]) - lo) / (hi - lo)
    broad = np.array([t.broad for t in vocab], float)
    meta = np.stack([loglam, broad, band.astype(float)], axis=1)
    kind = np.where(~band, 2, np.where(broad > 0, 1, 0))
    n_cls = np.array([len(t.classes) for t in vocab])
    return meta.astype(np.float32), kind, loglam.astype(np.float32), n_cls


class RelativeBias(nn.Module):
    """Attention bias from the wavelength separation: a Gaussian per head and type pair.

    ``bias(i, j) = c + a exp(-(u_i - u_j)^2 / 2 s^2)`` with learnable offset
    ``c``, amplitude ``a`` and width ``s`` per head and per pair of token types
    (``u``: log-wavelength scaled to [0, 1]). Evaluated as the Gaussian's
    cosine series on period 2 (``n_freq`` terms; widths below
    :data:`MIN_WIDTH` are clamped, where the series would ring), the bias is an
    inner product of query and key features, so it enters attention as extra
    query / key dimensions: the fused attention kernel then learns it with its
    ordinary gradients, where an additive learnable mask makes PyTorch's CPU
    attention backward ~10x slower. Tokens that are not bands get constant
    biases (their features are the zero-frequency term only).
    """

    MIN_WIDTH = 0.1

    def __init__(self, n_heads: int, n_freq: int = 6) -> None:
        super().__init__()
        shape = (n_heads, N_TYPES, N_TYPES)
        self.offset = nn.Parameter(torch.zeros(shape))
        self.amplitude = nn.Parameter(torch.zeros(shape))
        # widths from 0.1 to 0.5 of the log-wavelength range across heads
        widths = torch.logspace(math.log10(self.MIN_WIDTH), math.log10(0.5), n_heads)
        self.log_width = nn.Parameter(widths.log()[:, None, None].expand(shape).clone())
        self.register_buffer("omega", math.pi * torch.arange(n_freq), persistent=False)

    @property
    def n_features(self) -> int:
        return N_TYPES * 2 * len(self.omega)

    def coefficients(self) -> torch.Tensor:
        """Cosine-series coefficients ``(H, types, types, n_freq)``."""
        s = self.log_width.exp().clamp(min=self.MIN_WIDTH)[..., None]
        a = s * math.sqrt(2 * math.pi) * torch.exp(-((self.omega * s) ** 2) / 2)
        a = torch.cat([a[..., :1] / 2, a[..., 1:]], dim=-1)
        c = self.amplitude[..., None] * a
        return torch.cat([c[..., :1] + self.offset[..., None], c[..., 1:]], dim=-1)

    def _trig(self, u: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
        """``(..., L, n_freq, 2)``: cos, sin of omega u (non-bands: the zero frequency only)."""
        wu = u[..., None] * self.omega
        t = torch.stack([torch.cos(wu), torch.sin(wu)], dim=-1)
        const = torch.zeros_like(t)
        const[..., 0, 0] = 1.0
        return torch.where((kind == 2)[..., None, None], const, t)

    def query_features(self, u: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
        """``(..., H, L, F)`` for queries with scaled log-wavelengths ``u`` and types ``kind``."""
        c = self.coefficients()[:, kind]  # (H, ..., L, types, R)
        f = c[..., None] * self._trig(u, kind)[..., None, :, :]  # (H, ..., L, types, R, 2)
        return f.flatten(-3).movedim(0, -3)

    def key_features(self, u: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
        """``(..., L, F)`` for keys (no parameters: the one-hot type times the trig terms)."""
        onehot = F.one_hot(kind, N_TYPES).to(u.dtype)
        return (onehot[..., :, None, None] * self._trig(u, kind)[..., None, :, :]).flatten(-3)

    def forward(self, uq, kq, uk, kk) -> torch.Tensor:
        """The dense bias ``(..., H, Lq, Lk)`` (tests, plots; attention uses the features)."""
        return self.query_features(uq, kq) @ self.key_features(uk, kk)[..., None, :, :].transpose(
            -1, -2
        )


class Attention(nn.Module):
    """Multi-head attention; the relative bias comes in as extra query / key features.

    No dropout on the attention weights (the blocks drop the residual branches):
    attention dropout would force PyTorch's unfused CPU attention, ~5x slower.
    """

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.h, self.dropout = heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def forward(
        self,
        x: torch.Tensor,
        mem: torch.Tensor,
        key_mask: torch.Tensor | None,
        qf: torch.Tensor | None = None,
        kf: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` (B, Lq, d) attends to ``mem`` (B, Lk, d).

        ``key_mask``: additive, broadcastable to ``(B, H, Lq, Lk)`` (-inf on keys not
        to attend to) or None; ``qf``: bias features ``(H, Lq, F)`` or ``(B, H, Lq,
        F)``; ``kf``: ``(Lk, F)``; both None: no relative bias.
        """
        b, lq, d = x.shape
        lk = mem.shape[1]
        dh = d // self.h
        q = self.q(x).view(b, lq, self.h, dh).transpose(1, 2)
        k, v = self.kv(mem).view(b, lk, 2, self.h, dh).permute(2, 0, 3, 1, 4)
        if qf is not None and not torch.is_grad_enabled():
            # inference: the same bias as an additive mask, (H, Lq, Lk) when every row
            # has the same tokens, instead of widening each row's q / k / v by the
            # features (in training the additive form makes the backward pass slow)
            bias = qf.to(q.dtype) @ kf.to(q.dtype).transpose(-1, -2)
            bias = bias if bias.dim() == 4 else bias[None]
            key_mask = bias if key_mask is None else key_mask.to(q.dtype) + bias
            qf = None
        if qf is not None:
            nf = kf.shape[-1]
            # the bias features join q and k; v gets zeros there (sliced off below):
            # the fused kernel wants equal q / k / v widths
            q = torch.cat([q, (qf * math.sqrt(dh)).to(q.dtype).expand(b, self.h, lq, nf)], -1)
            k = torch.cat([k, kf.to(k.dtype).expand(b, self.h, lk, nf)], dim=-1)
            v = torch.cat([v, v.new_zeros(b, self.h, lk, nf)], dim=-1)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=None if key_mask is None else key_mask.to(q.dtype),
            scale=1 / math.sqrt(dh),
        )[..., :dh]
        return self.out(y.transpose(1, 2).reshape(b, lq, d))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention of tokens that attend only to themselves: the softmax over
        one key is 1, so each output is its own projected value."""
        d = x.shape[-1]
        return self.out(F.linear(x, self.kv.weight[d:], self.kv.bias[d:]))


class Block(nn.Module):
    """Pre-LN transformer block: self-attention, optional cross-attention, feed-forward."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float, cross: bool) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads, dropout)
        self.cross = Attention(d, heads, dropout) if cross else None
        self.ln2 = nn.LayerNorm(d) if cross else None
        self.ln3 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, d)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x, self_bias, mem=None, cross_bias=None):
        """``self_bias`` / ``cross_bias``: (key_mask, query features, key features);
        ``self_bias`` None: every token attends only to itself."""
        h = self.ln1(x)
        if self_bias is None:
            x = x + self.drop(self.attn.value(h))
        else:
            x = x + self.drop(self.attn(h, h, *self_bias))
        if self.cross is not None:
            x = x + self.drop(self.cross(self.ln2(x), mem, *cross_bias))
        return x + self.drop(self.ffn(self.ln3(x)))


class FoundationModel(nn.Module):
    """Encoder-decoder over tokens of :func:`jpasbatch.foundation.tokens.vocabulary`.

    Parameters
    ----------
    d_model, n_heads, enc_layers, enc_ffn, dec_layers, dec_ffn, dropout
        Architecture (defaults: :data:`FULL_SIZE`, OJALA's).
    """

    def __init__(self, **hparams) -> None:
        super().__init__()
        hp = FULL_SIZE | hparams
        self.hparams = hp
        d, heads = hp["d_model"], hp["n_heads"]
        meta, kind, loglam, n_cls = token_metadata()
        v = len(meta)
        self.register_buffer("meta", torch.from_numpy(meta), persistent=False)
        self.register_buffer("kind", torch.from_numpy(kind), persistent=False)
        self.register_buffer("loglam", torch.from_numpy(loglam), persistent=False)
        self.register_buffer("is_class", torch.from_numpy(n_cls > 0), persistent=False)
        offsets = np.concatenate([[0], np.cumsum(n_cls)[:-1]])
        self.register_buffer("class_offset", torch.from_numpy(offsets), persistent=False)
        self.token_emb = nn.Embedding(v, d)
        self.meta_mlp = nn.Sequential(nn.Linear(3, d), nn.GELU(), nn.Linear(d, d))
        self.value_mlp = nn.Sequential(nn.Linear(2, d), nn.GELU(), nn.Linear(d, d))
        self.class_emb = nn.Embedding(int(n_cls.sum()), d)
        self.enc_bias = RelativeBias(heads)
        self.dec_cross_bias = RelativeBias(heads)
        self.encoder = nn.ModuleList(
            Block(d, heads, hp["enc_ffn"], hp["dropout"], cross=False)
            for _ in range(hp["enc_layers"])
        )
        self.decoder = nn.ModuleList(
            Block(d, heads, hp["dec_ffn"], hp["dropout"], cross=True)
            for _ in range(hp["dec_layers"])
        )
        self.enc_norm = nn.LayerNorm(d)
        self.dec_norm = nn.LayerNorm(d)
        self.head_w = nn.Parameter(torch.randn(v, d, N_OUT) / math.sqrt(d))
        self.head_b = nn.Parameter(torch.zeros(v, N_OUT))

    # ----------------------------------------------------------------- pieces
    def type_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """Token-type embedding plus the metadata MLP, for ids of any shape."""
        return self.token_emb(ids) + self.meta_mlp(self.meta[ids])

    def encode(
        self, ids: torch.Tensor, values: torch.Tensor, errors: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states ``(B, L, d)`` and the additive key mask ``(B, 1, 1, L)`` (or None).

        Parameters
        ----------
        ids
            ``(L,)`` token ids of the sequence positions (shared by the batch).
        values, errors
            ``(B, L)`` standardised values (class index for categorical tokens) and errors.
        present
            ``(B, L)`` bool; absent positions are masked out of every attention.
        """
        cls = self.is_class[ids]
        feats = torch.stack([values, torch.log(errors + 1e-2) / 2], dim=-1)
        x_val = self.value_mlp(feats)
        idx = (self.class_offset[ids] + values.clamp(min=0).long()) * cls
        x_cls = self.class_emb(idx)
        x = self.type_embedding(ids) + torch.where(cls[:, None], x_cls, x_val)
        # a row with nothing present would give NaN softmaxes: it attends to
        # everything instead (the caller flags its outputs)
        absent = ~present & present.any(dim=1, keepdim=True)
        key_mask = None
        if bool(absent.any()):
            key_mask = torch.zeros(present.shape, dtype=x.dtype, device=x.device)
            key_mask = key_mask.masked_fill(absent, float("-inf"))[:, None, None, :]
        u, kind = self.loglam[ids], self.kind[ids]
        bias = (
            key_mask,
            self.enc_bias.query_features(u, kind),
            self.enc_bias.key_features(u, kind),
        )
        for block in self.encoder:
            x = block(x, bias)
        return self.enc_norm(x), key_mask

    def embedding(self, memory: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Mean encoder state over the present tokens, ``(B, d)``."""
        w = present.to(memory.dtype)[..., None]
        return (memory * w).sum(1) / w.sum(1).clamp(min=1)

    def decode(
        self,
        targets: torch.Tensor,
        memory: torch.Tensor,
        mem_ids: torch.Tensor,
        key_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Raw outputs ``(B, T, 4)`` of the target tokens ``(B, T)`` or ``(T,)``."""
        b = memory.shape[0]
        tq = targets if targets.dim() == 2 else targets[None].expand(b, -1)
        q = self.type_embedding(tq)
        uq, kq = self.loglam[tq], self.kind[tq]
        if targets.dim() == 1:  # one query set for the whole batch
            uq, kq = uq[0], kq[0]
        uk, kk = self.loglam[mem_ids], self.kind[mem_ids]
        cb = self.dec_cross_bias
        # each query attends only to itself among the queries (see the module docstring)
        self_bias = None  # inference: each query's self-attention is its value
        if torch.is_grad_enabled():
            # the same through attention with a diagonal mask, so that every parameter
            # has a gradient (zero) as DDP expects
            t = q.shape[1]
            eye = torch.eye(t, dtype=torch.bool, device=q.device)
            diag = torch.zeros(t, t, dtype=q.dtype, device=q.device)
            self_bias = (diag.masked_fill(~eye, float("-inf"))[None, None],)
        cross_bias = (key_mask, cb.query_features(uq, kq), cb.key_features(uk, kk))
        for block in self.decoder:
            q = block(q, self_bias, memory, cross_bias)
        q = self.dec_norm(q)
        w, bias = self.head_w[tq], self.head_b[tq]  # (B, T, d, 4), (B, T, 4)
        return torch.einsum("btd,btdo->bto", q, w) + bias

    def forward(self, ids, values, errors, present, targets):
        """Outputs ``(B, T, 4)`` of ``targets`` and the embeddings ``(B, d)``."""
        memory, key_mask = self.encode(ids, values, errors, present)
        return self.decode(targets, memory, ids, key_mask), self.embedding(memory, present)


def split_outputs(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, sigma) of real-valued token outputs ``(..., 4)``."""
    return out[..., 0], F.softplus(out[..., 1]) + 1e-3


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
