"""Parameter counts from shapes alone (jax.eval_shape): the 1.2T preset never allocates."""

from __future__ import annotations

import dataclasses
import math

from flax import nnx

from glam.config import GlamConfig
from glam.families.config import HFMoEConfig
from glam.model import Glam


@dataclasses.dataclass(frozen=True)
class ParamCount:
    total: int
    activated: int  # what one token touches: experts counted twice per MoE layer (top-2)
    expert: int  # all expert weights
    embedding: int

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def abstract_model(cfg: GlamConfig) -> Glam:
    """The model with ShapeDtypeStructs in place of arrays."""

    def create() -> Glam:
        with nnx.use_eager_sharding(False):
            return Glam(cfg, rngs=nnx.Rngs(params=0))

    return nnx.eval_shape(create)


def count_params(cfg: GlamConfig | HFMoEConfig) -> ParamCount:
    """Total, activated, expert and embedding parameters of a GLaM or an imported model."""
    if isinstance(cfg, HFMoEConfig):
        # Imported lazily: glam.families.model imports ParamCount from here.
        from glam.families.model import count_params as count_imported

        return count_imported(cfg)
    model = abstract_model(cfg)
    sizes = {
        path: math.prod(variable.get_value().shape)
        for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }
    total = sum(sizes.values())
    expert = sum(n for path, n in sizes.items() if path[-1] in ("up_edf", "down_efd"))
    embedding = sum(n for path, n in sizes.items() if path[-1] == "embed_vd")
    # Each MoE layer's token uses min(2, E) of its E equal experts.
    activated_expert = expert * min(2, cfg.num_experts) // cfg.num_experts if expert else 0
    activated = total - expert + activated_expert
    return ParamCount(total=total, activated=activated, expert=expert, embedding=embedding)


def forward_flops_per_token(cfg: GlamConfig, seq: int) -> float:
    """Model FLOPs of one token's forward pass at sequence length `seq` (the PaLM
    appendix's count): 2 x activated parameters, the tied output projection included, plus
    attention's 4 x layers x seq x heads x head_dim. Training costs three times this."""
    attention = 4 * cfg.num_layers * seq * cfg.num_heads * cfg.head_dim
    return 2 * count_params(cfg).activated + attention
