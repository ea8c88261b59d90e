"""GLaM model configuration and the presets of the paper's size table.

Du et al. 2021 (GLaM), Table 4: "base dense size / experts per MoE layer". Every other
layer's FFN is an MoE layer; `first_moe_layer` says which (1 = layers 1, 3, 5, ..., as in
GShard and Praxis, where the first block is dense).

    glam params glam-64b-64e        # 1.16T total, 96.6B activated, from shapes only
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

FfnKind = Literal["geglu", "moe", "gelu"]

# The paper's models all use a 256K SentencePiece vocabulary.
PAPER_VOCAB = 256_000


@dataclasses.dataclass(frozen=True)
class GlamConfig:
    """Shapes and routing hyper-parameters of one GLaM model."""

    name: str = "custom"
    vocab_size: int = 8192
    d_model: int = 256
    d_ff: int = 1024  # hidden size of dense FFNs and of each expert
    num_layers: int = 4
    num_heads: int = 4
    head_dim: int = 64
    # Experts per MoE layer. 0: a plain dense Transformer (every FFN is GEGLU).
    # 1: MoE layers with one expert, which reduces to a dense model (tested).
    num_experts: int = 8
    # Tokens an expert may take per group = S*cf/E (rounded); None = never drop.
    # 2.0 is GShard's training default: room for top-2 traffic even when unbalanced.
    capacity_factor: float | None = 2.0
    max_len: int = 1024  # longest sequence the service accepts; the bias itself has no limit
    first_moe_layer: int = 1  # MoE layers are first_moe_layer, +2, +4, ...
    # When set (and num_experts == 0), each MoE position holds one plain GELU FFN of this
    # hidden size instead: the "dense equivalent" of a MoE config, equal activated FLOPs.
    moe_dense_hidden: int | None = None
    rel_pos_buckets: int = 32  # T5 bucketed relative position bias, causal
    rel_pos_max_distance: int = 128
    norm_eps: float = 1e-6
    aux_loss_weight: float = 0.01  # per MoE layer, as in GShard / GLaM
    z_loss_weight: float = 0.0  # ST-MoE router z-loss; off by default like the paper

    def __post_init__(self) -> None:
        if self.num_experts < 0:
            raise ValueError("num_experts must be >= 0")
        if self.first_moe_layer not in (0, 1):
            raise ValueError("first_moe_layer must be 0 or 1 (MoE every other layer)")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise ValueError("capacity_factor must be positive or None")
        for field in ("vocab_size", "d_model", "d_ff", "num_layers", "num_heads", "head_dim"):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be positive")

    @property
    def top_k(self) -> int:
        """Choices per token in the trace: GLaM's gating is top-2. A lone expert (E=1) is
        chosen twice, the second time with probability 0, as in Praxis."""
        return 2

    # -- layer layout -------------------------------------------------------------------------
    def is_moe_position(self, layer: int) -> bool:
        """Whether `layer` is one of the every-other positions that MoE layers occupy."""
        return layer % 2 == self.first_moe_layer

    def ffn_kind(self, layer: int) -> FfnKind:
        if not self.is_moe_position(layer):
            return "geglu"
        if self.num_experts > 0:
            return "moe"
        return "gelu" if self.moe_dense_hidden else "geglu"

    @property
    def moe_layers(self) -> tuple[int, ...]:
        """Absolute indices of the MoE layers (empty for a dense model)."""
        return tuple(i for i in range(self.num_layers) if self.ffn_kind(i) == "moe")

    @property
    def is_moe(self) -> bool:
        return bool(self.moe_layers)

    def dense_equivalent(self) -> GlamConfig:
        """The dense model with the same activated FLOPs per token.

        Each MoE layer (two experts of hidden d_ff per token) becomes one GELU FFN of
        hidden 2*d_ff; everything else is unchanged.
        """
        if not self.is_moe:
            raise ValueError(f"{self.name} has no MoE layers")
        return dataclasses.replace(
            self,
            name=f"{self.name}-dense-equivalent",
            num_experts=0,
            moe_dense_hidden=2 * self.d_ff,
            capacity_factor=None,
        )

    def replace(self, **overrides: Any) -> GlamConfig:
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlamConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown GlamConfig fields: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> GlamConfig:
        """A named preset (see `PRESETS`), with field overrides."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
        return dataclasses.replace(base, **overrides)


def _paper(
    name: str, layers: int, d_model: int, d_ff: int, heads: int, head_dim: int, experts: int
) -> GlamConfig:
    return GlamConfig(
        name=name,
        vocab_size=PAPER_VOCAB,
        d_model=d_model,
        d_ff=d_ff,
        num_layers=layers,
        num_heads=heads,
        head_dim=head_dim,
        num_experts=experts,
        max_len=1024,  # the paper trains on 1024-token sequences
    )


PRESETS: dict[str, GlamConfig] = {
    # The paper's Table 4, row by row: (L, d_model, d_ff, heads, head_dim, E). Note the
    # largest models' attention is wider than d_model (128 heads x 128).
    "glam-0.1b": _paper("glam-0.1b", 12, 768, 3072, 12, 64, 0),
    "glam-0.1b-64e": _paper("glam-0.1b-64e", 12, 768, 3072, 12, 64, 64),
    "glam-1.7b": _paper("glam-1.7b", 24, 2048, 8192, 16, 128, 0),
    "glam-1.7b-32e": _paper("glam-1.7b-32e", 24, 2048, 8192, 16, 128, 32),
    "glam-1.7b-64e": _paper("glam-1.7b-64e", 24, 2048, 8192, 16, 128, 64),
    "glam-1.7b-128e": _paper("glam-1.7b-128e", 24, 2048, 8192, 16, 128, 128),
    "glam-1.7b-256e": _paper("glam-1.7b-256e", 24, 2048, 8192, 16, 128, 256),
    "glam-8b": _paper("glam-8b", 32, 4096, 16384, 32, 128, 0),
    "glam-8b-64e": _paper("glam-8b-64e", 32, 4096, 16384, 32, 128, 64),
    "glam-137b": _paper("glam-137b", 64, 8192, 65536, 128, 128, 0),
    "glam-64b-64e": _paper("glam-64b-64e", 64, 8192, 32768, 128, 128, 64),
    # Small presets that train on a 2-core CPU. tiny: the shipped model until glam-64e;
    # small: the benchmark shape of bench/forward.py.
    "glam-tiny": GlamConfig(
        name="glam-tiny",
        vocab_size=8192,
        d_model=128,
        d_ff=512,
        num_layers=4,
        num_heads=4,
        head_dim=32,
        num_experts=8,
        max_len=512,
    ),
    # The article's shape at CPU scale: 64 experts, top-2, MoE every other layer, the
    # corpus tokenizer's 24k vocabulary (docs/CORPUS.md). Sized so that two bfloat16
    # checkpoints fit the repository's 150 MiB (29M parameters, 4.9M activated; issue 13).
    "glam-64e": GlamConfig(
        name="glam-64e",
        vocab_size=24000,
        d_model=128,
        d_ff=512,
        num_layers=6,
        # Two heads of 64 rather than four of 32: the same FLOPs, but a CPU spends 40% less
        # time in attention when each score matmul contracts over 64 (measured, issue 13).
        num_heads=2,
        head_dim=64,
        num_experts=64,
        # S*cf/E slots per expert. A group is one sequence, mostly one document, whose
        # tokens crowd onto few experts: at 2.0 (GShard's default: 8 slots, each expert's
        # mean top-2 load) half of all assignments were dropped over the first 60 steps,
        # at 4.0 (16 slots) 30% through step 110 (measured). 8.0: 32 slots, a sequence
        # may spread its assignments over 16 experts without a drop.
        capacity_factor=8.0,
        max_len=1024,
    ),
    "glam-small": GlamConfig(
        name="glam-small",
        vocab_size=8192,
        d_model=256,
        d_ff=1024,
        num_layers=8,
        num_heads=4,
        head_dim=64,
        num_experts=16,
        max_len=1024,
    ),
}

# The paper's published parameter counts (total, activated), for `glam params` to compare.
PUBLISHED_PARAMS: dict[str, tuple[float, float | None]] = {
    "glam-1.7b-64e": (27e9, None),
    "glam-1.7b-128e": (53e9, None),
    "glam-1.7b-256e": (105e9, None),
    "glam-8b-64e": (143e9, None),
    "glam-137b": (137e9, 137e9),
    "glam-64b-64e": (1.2e12, 96.6e9),
}
