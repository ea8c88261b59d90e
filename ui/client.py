"""A typed client of the GLaM Routing Lab REST API: the dashboard's only way to the data.

    client = ApiClient.from_env()          # GLAMLAB_API_URL, GLAMLAB_API_KEY
    card = client.model()                  # -> ModelCard
    loads = client.load(Scope(layers=(1,)))

Every failure (refused connection, timeout, 4xx/5xx, a response of the wrong shape) is raised
as ApiError carrying the server's `detail` message, so pages can show one clear line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from ui import schemas as s

DEFAULT_API_URL = "http://127.0.0.1:8000"
T = TypeVar("T")

# Reads are quick aggregate queries; model compute (analysis of many texts, experiments over
# the corpus) can take a minute on a CPU, so it gets a longer read timeout.
READ_TIMEOUT_S = 30.0
COMPUTE_TIMEOUT_S = 300.0


class ApiError(Exception):
    """A failed API call: `status` is the HTTP status, None when the API was not reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message, self.status = message, status

    def __str__(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True)
class Scope:
    """Which routing records a statistic covers; empty means all (the model's pooled runs).

    Frozen and hashable so that it can be a key of the dashboard's read cache.
    """

    layers: tuple[int, ...] = ()
    run_ids: tuple[int, ...] = ()
    domains: tuple[str, ...] = ()
    model: str | None = None

    def params(self) -> list[tuple[str, str | int]]:
        """Query parameters: repeated keys for several layers, runs or domains."""
        params: list[tuple[str, str | int]] = [("layer", layer) for layer in self.layers]
        params += [("run_id", run) for run in self.run_ids]
        params += [("domain", domain) for domain in self.domains]
        if self.model:
            params.append(("model", self.model))
        return params


POOLED = Scope()  # every run without interventions, all layers and domains


def detail_message(response: httpx.Response) -> str:
    """The server's explanation of a failed response, as one readable line."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors: [{loc, msg}, ...]
        parts = []
        for item in detail:
            loc = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        detail = "; ".join(parts)
    if not detail:
        detail = response.text.strip()[:200] or response.reason_phrase
    return f"{detail} (HTTP {response.status_code})"


class ApiClient:
    """Synchronous client; one per dashboard process (it pools connections)."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=5.0),
            transport=transport,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiClient:
        env = os.environ if environ is None else environ
        return cls(env.get("GLAMLAB_API_URL") or DEFAULT_API_URL, env.get("GLAMLAB_API_KEY"))

    def close(self) -> None:
        self._http.close()

    # --- transport ------------------------------------------------------------------

    def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs) -> Any:
        try:
            response = self._http.request(
                method, path, timeout=timeout or httpx.USE_CLIENT_DEFAULT, **kwargs
            )
        except httpx.TimeoutException:
            raise ApiError(f"the API at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as error:
            raise ApiError(
                f"cannot reach the API at {self.base_url} ({type(error).__name__}); "
                "start it with `glamlab serve` or set GLAMLAB_API_URL"
            ) from None
        if response.status_code >= 400:
            raise ApiError(detail_message(response), response.status_code)
        if response.status_code == 204:
            return None
        if method == "GET" and path.endswith("/export"):
            return response.content
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{method} {path}: the API answered with non-JSON") from None

    def _parse(self, data: Any, type_: type[T] | Any, what: str) -> T:
        try:
            if isinstance(type_, type) and issubclass(type_, BaseModel):
                return type_.model_validate(data)
            return TypeAdapter(type_).validate_python(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ApiError(
                f"{what}: unexpected response shape at {where or 'top level'} ({first['msg']}); "
                "is the dashboard the same version as the API?"
            ) from None

    def _get(self, path: str, type_: Any, params: Sequence[tuple[str, Any]] = ()) -> Any:
        return self._parse(self._request("GET", path, params=list(params)), type_, f"GET {path}")

    def _post(self, path: str, type_: Any, body: dict[str, Any]) -> Any:
        data = self._request("POST", path, json=body, timeout=COMPUTE_TIMEOUT_S)
        return self._parse(data, type_, f"POST {path}")

    # --- model and analysis ---------------------------------------------------------

    def model(self) -> s.ModelCard:
        return self._get("/v1/model", s.ModelCard)

    def analyze(
        self,
        texts: Sequence[str],
        *,
        domain: str = "user",
        store: bool = True,
        capacity_factor: float | str | None = None,
        ablate: Mapping[int, Sequence[int]] | None = None,
        router_probs: bool = False,
        checkpoint: str = "final",
    ) -> s.AnalyzeResult:
        """`capacity_factor`: None for the model's own, "no-drops", or a factor."""
        body = {
            "texts": list(texts),
            "domain": domain,
            "store": store,
            "capacity_factor": capacity_factor,
            "ablate": {str(k): list(v) for k, v in ablate.items()} if ablate else None,
            "router_probs": router_probs,
            "checkpoint": checkpoint,
        }
        return self._post("/v1/analyze", s.AnalyzeResult, body)

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        store: bool = False,
        domain: str = "user",
    ) -> s.GenerateResult:
        body = {
            "prompt": prompt,
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
            "store": store,
            "domain": domain,
        }
        return self._post("/v1/generate", s.GenerateResult, body)

    # --- runs -----------------------------------------------------------------------

    def runs(
        self, *, limit: int = 50, cursor: int | None = None, source: str | None = None
    ) -> s.RunPage:
        params: list[tuple[str, Any]] = [("limit", limit)]
        if cursor is not None:
            params.append(("cursor", cursor))
        if source:
            params.append(("source", source))
        return self._get("/v1/runs", s.RunPage, params)

    def run(self, run_id: int) -> s.Run:
        return self._get(f"/v1/runs/{run_id}", s.Run)

    def run_tokens(
        self, run_id: int, *, limit: int = 20, offset: int = 0
    ) -> list[s.StoredDocument]:
        params = [("limit", limit), ("offset", offset)]
        return self._get(f"/v1/runs/{run_id}/tokens", list[s.StoredDocument], params)

    def delete_run(self, run_id: int) -> None:
        self._request("DELETE", f"/v1/runs/{run_id}")

    def export_run(self, run_id: int, fmt: str = "csv") -> bytes:
        return self._request("GET", f"/v1/runs/{run_id}/export", params={"format": fmt})

    # --- jobs -----------------------------------------------------------------------

    def start_job(
        self,
        *,
        corpus: str = "builtin",
        split: str = "validation",
        limit: int | None = None,
        upload: bytes | None = None,
        filename: str = "upload.jsonl",
    ) -> s.Job:
        form: dict[str, Any] = {"corpus": corpus, "split": split}
        if limit is not None:
            form["limit"] = str(limit)
        files = {"file": (filename, upload, "application/x-ndjson")} if upload is not None else None
        data = self._request("POST", "/v1/jobs", data=form, files=files)
        return self._parse(data, s.Job, "POST /v1/jobs")

    def jobs(self, *, limit: int = 50) -> list[s.Job]:
        return self._get("/v1/jobs", list[s.Job], [("limit", limit)])

    def job(self, job_id: int) -> s.Job:
        return self._get(f"/v1/jobs/{job_id}", s.Job)

    def cancel_job(self, job_id: int) -> s.Job:
        return self._post(f"/v1/jobs/{job_id}/cancel", s.Job, {})

    # --- statistics -----------------------------------------------------------------

    def load(self, scope: Scope = POOLED) -> list[s.LayerLoadStats]:
        return self._get("/v1/stats/load", list[s.LayerLoadStats], scope.params())

    def balance(self, scope: Scope = POOLED) -> s.BalanceStats:
        return self._get("/v1/stats/balance", s.BalanceStats, scope.params())

    def training(self, domains: Sequence[str] = ()) -> s.TrainingHistory:
        """The served model's routing over training (404 when it has none)."""
        params = [("domain", d) for d in domains]
        return self._get("/v1/stats/training", s.TrainingHistory, params)

    def domains(self, scope: Scope = POOLED) -> list[s.DomainSpecialization]:
        return self._get("/v1/stats/domains", list[s.DomainSpecialization], scope.params())

    def loss(self, scope: Scope = POOLED) -> list[s.DomainLoss]:
        return self._get("/v1/stats/loss", list[s.DomainLoss], scope.params())

    def vocab(
        self,
        scope: Scope,
        *,
        expert: int,
        by: str = "input",
        min_count: int = 5,
        limit: int = 30,
    ) -> list[s.VocabSpecialization]:
        params = [*scope.params(), ("expert", expert), ("by", by), ("min_count", min_count)]
        params.append(("limit", limit))
        return self._get("/v1/stats/vocab", list[s.VocabSpecialization], params)

    def coactivation(self, scope: Scope = POOLED) -> list[s.Coactivation]:
        return self._get("/v1/stats/coactivation", list[s.Coactivation], scope.params())

    def consecutive(self, scope: Scope = POOLED) -> list[s.ConsecutiveRouting]:
        return self._get("/v1/stats/consecutive", list[s.ConsecutiveRouting], scope.params())

    def transitions(
        self, scope: Scope = POOLED, *, src: int | None = None, dst: int | None = None
    ) -> list[s.Transitions]:
        params = scope.params()
        params += [(k, v) for k, v in (("src", src), ("dst", dst)) if v is not None]
        return self._get("/v1/stats/transitions", list[s.Transitions], params)

    def positions(self, scope: Scope = POOLED, *, bucket: int = 32) -> list[s.PositionDrops]:
        params = [*scope.params(), ("bucket", bucket)]
        return self._get("/v1/stats/positions", list[s.PositionDrops], params)

    def run_saturation(
        self, run_a: int, run_b: int, *, layers: Sequence[int] = (), domains: Sequence[str] = ()
    ) -> list[s.RunSaturation]:
        params: list[tuple[str, Any]] = [("run_a", run_a), ("run_b", run_b)]
        params += [("layer", x) for x in layers] + [("domain", d) for d in domains]
        return self._get("/v1/stats/saturation", list[s.RunSaturation], params)

    def expert(
        self,
        layer: int,
        expert: int,
        scope: Scope = POOLED,
        *,
        min_count: int = 3,
        limit: int = 15,
    ) -> s.ExpertProfile:
        params = [*scope.params(), ("min_count", min_count), ("limit", limit)]
        # The layer is in the path; a `layer` filter on top of it would be redundant.
        params = [(k, v) for k, v in params if k != "layer"]
        return self._get(f"/v1/experts/{layer}/{expert}", s.ExpertProfile, params)

    # --- experiments ----------------------------------------------------------------

    def ablation(
        self,
        ablate: Mapping[int, Sequence[int]],
        *,
        texts: Sequence[str] | None = None,
        domain: str = "user",
        per_domain: int = 4,
        corpus_domains: Sequence[str] | None = None,
    ) -> s.AblationResult:
        """On `texts`, or on a stratified sample of the built-in corpus: the first
        `per_domain` documents of every domain (or of `corpus_domains`)."""
        body: dict[str, Any] = {
            "ablate": {str(k): list(v) for k, v in ablate.items()},
            "domain": domain,
            "per_domain": per_domain,
            "corpus_domains": list(corpus_domains) if corpus_domains else None,
        }
        if texts:
            body["texts"] = list(texts)
        return self._post("/v1/experiments/ablation", s.AblationResult, body)

    def saturation(
        self,
        checkpoint_a: str,
        checkpoint_b: str,
        *,
        texts: Sequence[str] | None = None,
        per_domain: int = 4,
        corpus_domains: Sequence[str] | None = None,
    ) -> s.SaturationResult:
        body: dict[str, Any] = {
            "checkpoint_a": checkpoint_a,
            "checkpoint_b": checkpoint_b,
            "per_domain": per_domain,
            "corpus_domains": list(corpus_domains) if corpus_domains else None,
        }
        if texts:
            body["texts"] = list(texts)
        return self._post("/v1/experiments/saturation", s.SaturationResult, body)
