"""Service settings, from the environment (prefix GLAMLAB_, plus DATABASE_URL)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; `GLAMLAB_<NAME>` sets `<name>`."""

    model_config = SettingsConfigDict(env_prefix="GLAMLAB_", env_file=None, extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "GLAMLAB_DATABASE_URL"),
        description="SQLAlchemy URL; default the SQLite file data/glam.sqlite; "
        "postgresql://... for PostgreSQL",
    )
    auto_migrate: bool = Field(
        default=False, description="apply migrations at start (`glamlab db upgrade` does it too)"
    )
    checkpoint: Path | None = Field(
        default=None, description="model directory to serve (default: the shipped model)"
    )
    early_checkpoint: Path | None = Field(
        default=None,
        description="a second checkpoint for saturation (default: the shipped early one when "
        "the shipped model is served, else none)",
    )
    api_key: SecretStr | None = Field(
        default=None, description="when set, writes and model compute need X-API-Key"
    )
    # Stored runs hold users' texts: with a key set, reading them needs it too unless this is
    # turned off (a lab that shares its results but not its compute).
    protect_reads: bool = Field(
        default=True,
        description="with api_key set, every /v1 read (runs, their documents and exports, "
        "statistics, jobs, the model card) needs X-API-Key too; false leaves reads open. "
        "/healthz, /readyz and /metrics are always open",
    )
    max_tokens_per_text: int | None = Field(
        default=None, ge=1, description="default: the model's max_len"
    )
    max_texts_per_request: int = Field(default=64, ge=1)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_new_tokens: int = Field(default=256, ge=1)
    batch_window_ms: float = Field(
        default=0.0,
        ge=0,
        description="extra wait for more requests to batch; 0: batch only what queued up "
        "while the model was busy",
    )
    max_batch_size: int = Field(default=32, ge=1)
    # None: on for a GLaM checkpoint (the shipped model takes minutes on a CPU), off for an
    # imported one, for which the same corpus can take hours at billions of parameters.
    analyze_builtin_on_start: bool | None = Field(
        default=None,
        description="analyse the built-in validation corpus into an empty store; default: "
        "true for GLaM checkpoints, false for imported (Hugging Face) ones",
    )
    job_chunk_documents: int = Field(default=16, ge=1, description="documents per job commit")
    job_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="how long a runner's claim on a job lasts unrenewed: after a crash, "
        "another API process (or the restarted one) resumes the job this much later",
    )
    cors_origins: list[str] = Field(
        default=["http://localhost:8501", "http://127.0.0.1:8501"],
        description="origins allowed to call the API from a browser (the dashboard)",
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_means_none(cls, value: object) -> object:
        # `GLAMLAB_API_KEY=` (compose's default) means "no key", not a key of "".
        return None if value == "" else value

    @model_validator(mode="after")
    def _refuse_blank_key(self) -> Settings:
        if self.api_key is not None and not self.api_key.get_secret_value().strip():
            raise ValueError("GLAMLAB_API_KEY is blank; unset it or give a real key")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
