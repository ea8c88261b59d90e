"""The routing capture contract: what one forward pass reports about its MoE routing.

Everything downstream of the model (storage, API, dashboard) consumes `RoutingTrace` and
nothing model-internal. Axis letters: L MoE layers, B batch, S sequence positions,
E experts, k choices per token (2 for GLaM, up to 8 for imported models); the trailing k
axis is the rank of the choice (0 = top-1, 1 = the second choice, ...).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from flax import nnx


class RoutingCapture(nnx.Intermediate):
    """Variable type the MoE layers `sow` routing into; read back with `nnx.capture`."""


@dataclasses.dataclass(frozen=True, eq=False)
class RoutingTrace:
    """Per-token routing of one forward pass over a batch [B, S], as numpy arrays."""

    moe_layers: np.ndarray  # [L] int32, absolute layer index of each MoE layer
    tokens: np.ndarray  # [B, S] int32 input token ids
    mask: np.ndarray  # [B, S] bool, True for valid (non-padding) tokens
    expert: np.ndarray  # [L, B, S, k] int16 chosen experts in rank order
    # [L, B, S, k] float32 final combine weight: after drops, normalisation and scaling
    gate: np.ndarray
    prob: np.ndarray  # [L, B, S, k] float32 router score of each choice (softmax or sigmoid)
    kept: np.ndarray  # [L, B, S, k] bool, False when capacity dropped the assignment
    entropy: np.ndarray  # [L, B, S] float32 router entropy in nats
    aux_loss: np.ndarray  # [L] float32 load-balancing loss (1.0 when perfectly balanced)
    z_loss: np.ndarray  # [L] float32 router z-loss (mean logsumexp(logits)^2)
    nll: np.ndarray  # [B, S] float32 next-token loss, NaN where there is no next token
    predicted: np.ndarray  # [B, S] int32 argmax next-token prediction
    router_probs: np.ndarray | None = None  # [L, B, S, E] float32, only when asked for
    # Each sequence's own aux and z loss [L, B] (0 for an empty row), so the trace of a
    # subset of the batch reports the losses that subset would have alone.
    group_aux_loss: np.ndarray | None = None
    group_z_loss: np.ndarray | None = None

    def __post_init__(self) -> None:
        num_layers = self.moe_layers.shape[0]
        batch, seq = self.tokens.shape
        if self.expert.ndim != 4 or self.expert.shape[-1] < 1:
            raise ValueError(
                f"RoutingTrace.expert has shape {self.expert.shape}, expected [L, B, S, k]"
            )
        k = self.expert.shape[-1]
        expected = {
            "mask": (batch, seq),
            "expert": (num_layers, batch, seq, k),
            "gate": (num_layers, batch, seq, k),
            "prob": (num_layers, batch, seq, k),
            "kept": (num_layers, batch, seq, k),
            "entropy": (num_layers, batch, seq),
            "aux_loss": (num_layers,),
            "z_loss": (num_layers,),
            "nll": (batch, seq),
            "predicted": (batch, seq),
        }
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise ValueError(f"RoutingTrace.{name} has shape {actual}, expected {shape}")
        if self.router_probs is not None and self.router_probs.shape[:3] != (
            num_layers,
            batch,
            seq,
        ):
            raise ValueError(
                f"RoutingTrace.router_probs has shape {self.router_probs.shape}, "
                f"expected ({num_layers}, {batch}, {seq}, E)"
            )

    @property
    def num_layers(self) -> int:
        return int(self.moe_layers.shape[0])

    @property
    def top_k(self) -> int:
        """k: the number of experts each token chose."""
        return int(self.expert.shape[-1])

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    def select(self, rows: np.ndarray | list[int] | slice) -> RoutingTrace:
        """The trace of a subset of the batch rows (e.g. one document)."""
        aux_loss, z_loss = self.aux_loss, self.z_loss
        group_aux = group_z = None
        if self.group_aux_loss is not None and self.group_z_loss is not None:
            group_aux, group_z = self.group_aux_loss[:, rows], self.group_z_loss[:, rows]
            tokens = self.mask[rows].sum(-1).astype(np.float64)  # [b]
            has_tokens = (tokens > 0).astype(np.float64)
            aux_loss = (group_aux @ has_tokens / max(has_tokens.sum(), 1.0)).astype(np.float32)
            z_loss = (group_z @ tokens / max(tokens.sum(), 1.0)).astype(np.float32)
        return dataclasses.replace(
            self,
            aux_loss=aux_loss,
            z_loss=z_loss,
            group_aux_loss=group_aux,
            group_z_loss=group_z,
            tokens=self.tokens[rows],
            mask=self.mask[rows],
            expert=self.expert[:, rows],
            gate=self.gate[:, rows],
            prob=self.prob[:, rows],
            kept=self.kept[:, rows],
            entropy=self.entropy[:, rows],
            nll=self.nll[rows],
            predicted=self.predicted[rows],
            router_probs=None if self.router_probs is None else self.router_probs[:, rows],
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain name -> array mapping (for np.savez and serialisation)."""
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in arrays.items() if v is not None}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RoutingTrace:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: np.asarray(v) for k, v in arrays.items() if k in names})
