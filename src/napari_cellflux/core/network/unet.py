"""The velocity field ``v(x, t, c)``: a U-Net in pixel space.

Four resolution stages (configurable), Fourier features for t, the condition embedded by a
small MLP and added to the time embedding, and that joint embedding injected into every
residual block as a scale and shift (FiLM). Dropped conditions (classifier-free guidance)
use a learned null embedding instead of the condition MLP output. A network built with
``config.jump`` also embeds a jump size h (the average velocity from t to t + h; h = 0 is the
instantaneous velocity) and a guidance scale w, added to the same joint embedding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import UNetConfig

__all__ = ["GUIDANCE_SCALE", "VelocityUNet", "FourierTimeEmbedding"]

#: Guidance scales are embedded as w / GUIDANCE_SCALE (the trained range is 0..GUIDANCE_SCALE).
GUIDANCE_SCALE = 4.0


def _groups(channels: int) -> int:
    """Largest group count <= 8 that divides ``channels`` (GroupNorm needs a divisor)."""
    for g in (8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1


class FourierTimeEmbedding(nn.Module):
    """Embed scalar t in [0, 1] with fixed log-spaced sine/cosine features."""

    def __init__(self, features: int) -> None:
        super().__init__()
        half = max(features // 2, 1)
        freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), half))
        self.register_buffer("freqs", freqs * math.pi, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None].float() * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


def _scalar_embedding(features: int, width: int) -> nn.Sequential:
    """Fourier features of a scalar, then a two-layer MLP to the embedding width."""
    return nn.Sequential(
        FourierTimeEmbedding(features),
        nn.Linear(2 * max(features // 2, 1), width),
        nn.SiLU(),
        nn.Linear(width, width),
    )


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the embedding as FiLM scale/shift before the 2nd conv.

    The second GroupNorm's own affine and the FiLM scale/shift are one multiply-add per
    pixel (the same arithmetic in another order), and without gradients the activations
    are applied in place: on the CPU the block is bound by passes over memory, not by its
    convolutions (a forward pass 1.09x faster in float32, 1.11x in bfloat16 on a 2-core
    CPU: ``python -m evaluation.speed --block``, run ``block_fold_cpu``)."""

    def __init__(self, cin: int, cout: int, embed_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        in_place = not torch.is_grad_enabled()  # no backward pass needs the inputs kept
        h = self.conv1(F.silu(self.norm1(x), inplace=in_place))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        norm = self.norm2
        gain = norm.weight[:, None, None] * (1 + scale)
        offset = norm.bias[:, None, None] * (1 + scale) + shift
        h = F.group_norm(h, norm.num_groups, None, None, norm.eps)
        h = torch.addcmul(offset.to(h.dtype), h, gain.to(h.dtype))
        h = self.conv2(self.dropout(F.silu(h, inplace=in_place)))
        return h.add_(self.skip(x)) if in_place else h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head spatial self-attention, used only at the coarsest resolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = F.scaled_dot_product_attention(
            q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None], v.transpose(1, 2)[:, None]
        )[:, 0]
        return x + self.out(attn.transpose(1, 2).reshape(b, c, h, w))


class VelocityUNet(nn.Module):
    """U-Net velocity field ``v(x, t, c)`` for conditional flow matching.

    Parameters
    ----------
    config
        Architecture (see :class:`~napari_cellflux.core.network.config.UNetConfig`).

    Notes
    -----
    ``forward(x, t, c, null_mask)`` takes images ``x`` (B, C, H, W) in normalised units, times
    ``t`` (B,) in [0, 1], condition vectors ``c`` (B, cond_dim) and an optional boolean
    ``null_mask`` (B,) marking samples whose condition is replaced by the null token; a jump
    network (``config.jump``) also takes ``h`` (B,) jump sizes in [-1, 1] and ``w`` (B,)
    guidance scales and returns the guided average velocity over [t, t + h].
    H and W must be divisible by ``2 ** (stages - 1)``.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        e = config.embed_dim
        widths = [config.base_width * m for m in config.channel_mults]
        self.time_embed = _scalar_embedding(config.time_features, e)
        if config.jump:  # built only for jump weights: older files keep their exact keys
            self.jump_embed = _scalar_embedding(config.time_features, e)
            self.guidance_embed = _scalar_embedding(config.time_features, e)
        self.cond_embed = nn.Sequential(
            nn.Linear(config.cond_dim, e),
            nn.SiLU(),
            nn.Linear(e, e),
        )
        self.null_embedding = nn.Parameter(torch.zeros(e))
        self.stem = nn.Conv2d(config.in_channels, widths[0], 3, padding=1)

        self.down = nn.ModuleList()
        skips = [widths[0]]
        cin = widths[0]
        for i, w in enumerate(widths):
            stage = nn.ModuleList()
            for _ in range(config.num_res_blocks):
                stage.append(ResBlock(cin, w, e, config.dropout))
                cin = w
                if i in config.attention_stages:
                    stage.append(SelfAttention(w))
                skips.append(w)
            if i < len(widths) - 1:
                stage.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
                skips.append(w)
            self.down.append(stage)

        self.mid1 = ResBlock(cin, cin, e, config.dropout)
        self.mid_attn = SelfAttention(cin) if config.attention_stages else nn.Identity()
        self.mid2 = ResBlock(cin, cin, e, config.dropout)

        self.up = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            stage = nn.ModuleList()
            for _ in range(config.num_res_blocks + 1):
                stage.append(ResBlock(cin + skips.pop(), w, e, config.dropout))
                cin = w
                if i in config.attention_stages:
                    stage.append(SelfAttention(w))
            if i > 0:
                stage.append(nn.Upsample(scale_factor=2, mode="nearest"))
                stage.append(nn.Conv2d(w, w, 3, padding=1))
            self.up.append(stage)

        self.head = nn.Sequential(
            nn.GroupNorm(_groups(cin), cin),
            nn.SiLU(),
            nn.Conv2d(cin, config.in_channels, 3, padding=1),
        )
        # Start as the zero field: an untrained model leaves cells unchanged.
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def embed(
        self,
        t: torch.Tensor,
        c: torch.Tensor,
        null_mask: torch.Tensor | None,
        h: torch.Tensor | None = None,
        w: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Joint time + condition embedding, with the null token where ``null_mask``; for a
        jump network also the jump size ``h`` (default 0) and guidance ``w`` (default 1)."""
        cond = self.cond_embed(c)
        if null_mask is not None:
            cond = torch.where(null_mask[:, None], self.null_embedding.to(cond.dtype), cond)
        emb = self.time_embed(t) + cond
        if not self.config.jump:
            if h is not None or w is not None:
                raise ValueError("these weights were not trained to take a jump size or guidance")
            return emb
        h = torch.zeros_like(t) if h is None else h.expand(t.shape[0])
        w = torch.ones_like(t) if w is None else w.expand(t.shape[0])
        return emb + self.jump_embed(h) + self.guidance_embed(w / GUIDANCE_SCALE)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        c: torch.Tensor,
        null_mask: torch.Tensor | None = None,
        h: torch.Tensor | None = None,
        w: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.embed(t, c, null_mask, h, w)
        h = self.stem(x)
        hs = [h]
        for stage in self.down:
            for layer in stage:
                h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
                if not isinstance(layer, SelfAttention):
                    hs.append(h)
                else:
                    hs[-1] = h
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for stage in self.up:
            for layer in stage:
                if isinstance(layer, ResBlock):
                    h = layer(torch.cat([h, hs.pop()], dim=1), emb)
                else:
                    h = layer(h)
        return self.head(h)
