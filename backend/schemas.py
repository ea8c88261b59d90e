"""Request and response bodies of the API (pydantic), with OpenAPI examples."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Domain = Field(
    default="user",
    min_length=1,
    max_length=64,
    pattern=r"^[^\x00-\x1f]+$",
    description="a label for the texts (e.g. code, chat-ja); statistics filter by it",
)


class Problem(BaseModel):
    detail: str = Field(description="what went wrong and what to change")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: body, query or path, then the field")
    msg: str
    type: str


class InvalidInput(BaseModel):
    """A 422: the route's own message, or the list of fields that failed validation."""

    detail: str | list[FieldError] = Field(description="what went wrong and what to change")


# Error responses that many routes share (their bodies are Problem / InvalidInput).
BAD_BODY = {400: {"model": Problem, "description": "the body could not be parsed (not UTF-8?)"}}
INVALID = {422: {"model": InvalidInput, "description": "invalid input, with what to fix"}}
DATABASE_DOWN = {503: {"model": Problem, "description": "database unavailable; retry shortly"}}
KEY_REQUIRED = {401: {"model": Problem, "description": "API key required (X-API-Key)"}}


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "texts": ["def add(a, b):\n    return a + b", "こんにちは、元気ですか？"],
                    "domain": "demo",
                    "store": True,
                    "capacity_factor": None,
                    "ablate": {"1": [3]},
                    "router_probs": False,
                }
            ]
        },
    )

    texts: list[str] = Field(min_length=1, description="texts to run through the model")
    domain: str = Domain
    store: bool = Field(default=True, description="write the run to the database")
    capacity_factor: float | Literal["no-drops"] | None = Field(
        default=None,
        description="override of the model's capacity factor: a factor in (0, 64], or "
        '"no-drops" for unlimited capacity; null: the model\'s own',
    )

    @field_validator("capacity_factor")
    @classmethod
    def _factor_in_range(cls, factor: float | str | None) -> float | str | None:
        if isinstance(factor, float | int) and not 0 < factor <= 64:
            raise ValueError('capacity_factor must be in (0, 64], "no-drops" or null')
        return factor

    ablate: dict[int, list[int]] | None = Field(
        default=None, description="MoE layer -> experts switched off for this request"
    )
    router_probs: bool = Field(default=False, description="return every expert's probability")
    checkpoint: str = Field(default="final", description="a registered checkpoint name")

    @field_validator("texts")
    @classmethod
    def _no_empty_texts(cls, texts: list[str]) -> list[str]:
        for index, text in enumerate(texts):
            if not text:
                raise ValueError(f"texts[{index}] is empty")
        return texts


class Route(BaseModel):
    layer: int = Field(description="absolute index of the MoE layer")
    experts: list[int] = Field(description="the k chosen expert ids, in rank order")
    gates: list[float] = Field(
        description="final combine weights (after capacity drops, normalisation and scaling)"
    )
    probs: list[float] = Field(description="the router's score of each choice")
    kept: list[bool] = Field(description="false where capacity dropped the assignment")
    entropy: float = Field(description="router entropy, nats")
    router_probs: list[float] | None = Field(default=None, description="all experts, if asked")


class Token(BaseModel):
    position: int
    piece: str
    token_id: int
    nll: float | None = Field(description="loss of the next token; null at the last position")
    predicted: int = Field(description="the model's most likely next token")
    predicted_piece: str
    routes: list[Route]


class Document(BaseModel):
    index: int
    document_id: int | None = Field(default=None, description="stored document id")
    domain: str
    n_tokens: int
    mean_nll: float | None
    aux_loss: list[float] = Field(description="per MoE layer, this text alone")
    z_loss: list[float]
    tokens: list[Token]


class AnalyzeResponse(BaseModel):
    run_id: int | None = Field(description="the stored run, when store=true")
    model: str
    checkpoint: str
    moe_layers: list[int]
    num_experts: int
    top_k: int
    documents: list[Document]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "prompt": "def main(",
                    "max_new_tokens": 32,
                    "temperature": 0.8,
                    "top_p": 0.9,
                    "seed": 0,
                    "store": False,
                }
            ]
        },
    )

    prompt: str = Field(min_length=1)
    max_new_tokens: int = Field(default=32, ge=0)
    temperature: float = Field(default=0.0, ge=0, le=10)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    store: bool = False
    domain: str = Domain


class GenerateResponse(BaseModel):
    text: str = Field(description="the generated continuation")
    prompt_tokens: int
    stopped_at_eos: bool
    run_id: int | None
    document: Document


class CheckpointOut(BaseModel):
    name: str
    step: int | None
    sha256: str


class ModelCard(BaseModel):
    name: str
    family: str = Field(
        description='"glam", or an imported checkpoint\'s family (config.json model_type: '
        "mixtral, olmoe, qwen2_moe, qwen3_moe, deepseek_v3)"
    )
    preset: str
    config: dict
    num_experts: int
    top_k: int
    moe_layers: list[int]
    params_total: int
    params_activated: int
    checkpoint: CheckpointOut
    checkpoints: list[CheckpointOut]
    max_tokens_per_text: int
    max_texts_per_request: int
