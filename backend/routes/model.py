"""The model card: what is being served, and which checkpoints are registered."""

from __future__ import annotations

from fastapi import APIRouter

from backend.deps import StateDep
from backend.schemas import CheckpointOut, ModelCard

router = APIRouter(prefix="/v1/model", tags=["model"])


def _checkpoint(state: StateDep, name: str) -> CheckpointOut:
    info = state.registry.info(name)
    return CheckpointOut(name=info.name, step=info.step, sha256=info.sha256)


@router.get("", summary="The served model, its size and its checkpoints")
def model_card(state: StateDep) -> ModelCard:
    cfg = state.registry.main.config
    return ModelCard(
        name=cfg.name,
        family=state.registry.family,
        preset=cfg.name,
        config=cfg.to_dict(),
        num_experts=cfg.num_experts,
        top_k=cfg.top_k,
        moe_layers=list(cfg.moe_layers),
        params_total=state.registry.params.total,
        params_activated=state.registry.params.activated,
        checkpoint=_checkpoint(state, "final"),
        checkpoints=[_checkpoint(state, name) for name in state.registry.names],
        max_tokens_per_text=state.max_tokens,
        max_texts_per_request=state.settings.max_texts_per_request,
    )
