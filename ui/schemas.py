"""The API's responses as the dashboard reads them: pydantic models, validated on arrival.

These mirror the service's OpenAPI schemas (GET /openapi.json) without importing the
backend: the dashboard talks HTTP only. Unknown fields are ignored, so the service can add
fields without breaking the dashboard; a missing or mistyped field fails loudly in the
client (as an ApiError), not deep inside a chart.

Every statistic carries `baseline`: its value under uniform routing, the reference the MoE
papers compare against. Values are None where the statistic is undefined (nothing counted).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    # Frozen: cached reads are shared between reruns and sessions and must not be mutated.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Measure(_Model):
    value: float | None
    baseline: float | None


# --- model card -------------------------------------------------------------------------


class Checkpoint(_Model):
    name: str
    step: int | None
    sha256: str


class ModelCard(_Model):
    name: str
    preset: str
    config: dict
    num_experts: int
    top_k: int
    moe_layers: list[int]
    params_total: int
    params_activated: int
    checkpoint: Checkpoint
    checkpoints: list[Checkpoint]
    max_tokens_per_text: int
    max_texts_per_request: int


# --- token routing (analyze, generate, stored runs) -------------------------------------


class Route(_Model):
    layer: int  # absolute index of the MoE layer
    experts: list[int]  # [top-1, top-2]
    gates: list[float]  # combine weights after capacity drops
    probs: list[float]  # raw router probabilities of the two choices
    kept: list[bool]  # false where capacity dropped the assignment
    entropy: float  # router entropy, nats
    router_probs: list[float] | None = None


class Token(_Model):
    position: int
    token_id: int
    piece: str | None
    nll: float | None  # loss of the next token; None at the last position
    predicted: int
    predicted_piece: str | None
    routes: list[Route]  # one per MoE layer, in layer order


class Document(_Model):
    """A text's tokens with their routing, from an analysis or generation."""

    index: int
    document_id: int | None = None
    domain: str
    n_tokens: int
    mean_nll: float | None
    aux_loss: list[float]
    z_loss: list[float]
    tokens: list[Token]


class AnalyzeResult(_Model):
    run_id: int | None
    model: str
    checkpoint: str
    moe_layers: list[int]
    num_experts: int
    top_k: int
    documents: list[Document]


class GenerateResult(_Model):
    text: str
    prompt_tokens: int
    stopped_at_eos: bool
    run_id: int | None
    document: Document


# --- stored runs and jobs -------------------------------------------------------------


class Run(_Model):
    id: int
    model: str
    source: str  # request | job | generate
    parameters: dict
    pooled: bool  # counts in the model-wide statistics (no intervention)
    label: str | None
    n_documents: int
    n_tokens: int
    created_at: str
    domains: list[str]


class RunPage(_Model):
    runs: list[Run]
    next_cursor: int | None


class StoredDocumentInfo(_Model):
    id: int
    run_id: int
    ordinal: int
    domain: str
    text: str
    n_tokens: int
    mean_nll: float | None


class StoredDocument(_Model):
    document: StoredDocumentInfo
    tokens: list[Token]


class Job(_Model):
    job_id: int
    status: str  # queued | running | done | failed | cancelled
    done: int
    total: int
    error: str | None
    run_id: int | None
    corpus: str

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


# --- statistics -------------------------------------------------------------------------


class ExpertLoad(_Model):
    expert: int
    load: int  # kept assignments, all ranks
    share: Measure  # baseline 1/E
    chosen: list[int]  # [k] tokens choosing the expert at each rank
    kept: list[int]  # [k] of those, kept


class LayerLoad(_Model):
    layer: int
    total: int
    experts: list[ExpertLoad]


class LayerBalance(_Model):
    layer: int
    total: int
    cv: Measure
    max_violation: Measure
    dead_experts: Measure
    load_entropy: Measure


class LayerRouting(_Model):
    layer: int
    tokens: int
    drop_rate: Measure  # all ranks
    drop_rate_by_rank: list[Measure]  # [k]
    router_entropy: Measure
    aux_loss: Measure
    z_loss: Measure


class LayerLoadStats(_Model):
    layer: int
    load: LayerLoad
    balance: LayerBalance
    routing: LayerRouting


class BalanceStats(_Model):
    balance: list[LayerBalance]
    routing: list[LayerRouting]


class DomainSpecialization(_Model):
    """OLMoE eq. 7: share of the domain's tokens with each expert in their top-k."""

    layer: int
    domain: str
    tokens: int
    counts: list[int]
    shares: list[float | None]
    baseline: float  # k/E


class DomainLoss(_Model):
    domain: str
    documents: int
    tokens: int
    scored_tokens: int
    mean_nll: Measure  # baseline ln V


class TokenShare(_Model):
    token_id: int
    piece: str | None
    count: int  # N_x
    with_expert: int  # N_{x,e}
    share: float  # N_{x,e} / N_x


class VocabSpecialization(_Model):
    """OLMoE eq. 8 for one expert at one layer: its tokens, best first."""

    layer: int
    expert: int
    by: str  # input | predicted
    min_count: int
    baseline: float  # k/E
    tokens: list[TokenShare]


class Coactivation(_Model):
    """OLMoE eq. 6: row i is N_{i,j} / N_i."""

    layer: int
    counts: list[int]
    pairs: list[list[int]]
    ratios: list[list[float | None]]
    baseline: float


class ConsecutiveRouting(_Model):
    """Mixtral table 5: adjacent tokens routed alike."""

    layer: int
    pairs: int
    same_top1: Measure
    shared_topk: Measure


class Transitions(_Model):
    layer_from: int
    layer_to: int
    counts: list[list[int]]
    probabilities: list[list[float | None]]  # row-normalised
    baseline: float  # 1/E


class PositionDrops(_Model):
    layer: int
    start: int
    stop: int
    tokens: int
    drop_rate: Measure  # assignments, all ranks
    drop_rate_top1: Measure


class RunSaturation(_Model):
    """OLMoE eq. 5 between two stored runs of the same texts."""

    layer: int
    tokens: int
    saturation: Measure  # baseline k/E


# --- expert profile ---------------------------------------------------------------------


class DomainShare(_Model):
    domain: str
    tokens: int
    share: float | None
    baseline: float


class Partner(_Model):
    expert: int
    ratio: float | None
    baseline: float


class ExpertExample(_Model):
    document_id: int
    domain: str
    position: int
    rank: int
    gate: float
    before: list[str]
    piece: str
    after: list[str]


class ExpertProfile(_Model):
    layer: int
    expert: int
    load: int
    share: float | None
    share_baseline: float | None
    domains: list[DomainShare]
    top_input_tokens: list[TokenShare]
    top_predicted_tokens: list[TokenShare]
    partners: list[Partner]
    examples: list[ExpertExample]


# --- experiments ------------------------------------------------------------------------


class DomainEffect(_Model):
    domain: str
    tokens: int  # tokens with a next token (scored)
    # None when no token of the domain was scored (e.g. its texts are one token each).
    base_nll: float | None
    ablated_nll: float | None
    delta: float | None


class Rerouting(_Model):
    layer: int
    affected_tokens: int  # tokens whose top-2 held a switched-off expert
    changed_top1: float  # share of all valid tokens whose top-1 changed
    new_experts: list[float]  # where the affected tokens' new assignments went


class Sample(_Model):
    """What an experiment measured: documents per domain, from texts or the built-in corpus."""

    source: str  # texts | builtin
    documents: dict[str, int]


class AblationResult(_Model):
    ablate: dict[int, list[int]]
    sample: Sample
    domains: list[DomainEffect]
    rerouting: list[Rerouting]


class LayerSaturation(_Model):
    layer: int
    tokens: int
    saturation: float
    baseline: float  # 2/E


class SaturationResult(_Model):
    checkpoint_a: str
    checkpoint_b: str
    sample: Sample
    layers: list[LayerSaturation]


class TrainingPoint(_Model):
    """The probe set's routing at one training step, MoE layer and domain ('' = all)."""

    step: int
    tokens_seen: int
    layer: int
    domain: str
    tokens: int
    saturation: float | None
    top1_agreement: float | None
    load_cv: float | None
    max_vio: float | None
    dead_experts: int
    drop_rate: float | None
    router_entropy: float | None
    loss: float | None


class TrainingHistory(_Model):
    model: str
    num_experts: int
    saturation_baseline: float
    last_step: int | None
    points: list[TrainingPoint]
