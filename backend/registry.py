"""The checkpoints the service can run: the served model and the registered others.

Only registered checkpoints are loadable (by name, never by path from a request): the
served one ("final") and an earlier one ("early", for router saturation), loaded lazily.
Either may be a GLaM directory or an imported Hugging Face MoE directory (glam.families);
the shipped early checkpoint is registered by default only beside the shipped final one.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from glam import checkpoint
from glam.checkpoint import Loaded
from glam.config import GlamConfig
from glam.families.config import HFMoEConfig
from glam.model import Glam
from glam.params import count_params
from storage.errors import NotFound


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    name: str
    path: Path
    step: int | None
    sha256: str


class UnknownCheckpoint(NotFound):
    pass


class ModelRegistry:
    """Named checkpoints of one model shape; `get(name)` loads on first use."""

    def __init__(self, final: Path | None, early: Path | None):
        shipped = checkpoint.shipped_dir("final")
        final_path = Path(final) if final else shipped
        self._paths = {"final": final_path}
        # The shipped early checkpoint only makes sense beside the shipped final one: any
        # other model (an imported one, a model trained here) has another shape or history.
        if early:
            early_path: Path | None = Path(early)
        elif final_path.resolve() == shipped.resolve():
            early_path = checkpoint.shipped_dir("early")
        else:
            early_path = None
        if early_path is not None and early_path.exists():
            self._paths["early"] = early_path
        self._loaded: dict[str, Loaded] = {}
        self._lock = threading.Lock()
        self.main = self._load("final")
        self.params = count_params(self.main.config)
        self._infos = {
            name: CheckpointInfo(
                name=name,
                path=path,
                step=self.main.meta.get("step") if name == "final" else None,
                sha256=checkpoint.params_sha256(path),
            )
            for name, path in self._paths.items()
        }

    def _load(self, name: str) -> Loaded:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = checkpoint.load(self._paths[name])
            return self._loaded[name]

    @property
    def names(self) -> list[str]:
        return list(self._paths)

    @property
    def imported(self) -> bool:
        """Whether the served model is an imported (Hugging Face) one rather than a GLaM."""
        return not isinstance(self.main.config, GlamConfig)

    @property
    def family(self) -> str:
        """The model family: glam, or an imported model's config.json model_type."""
        return "glam" if not self.imported else self.main.config.family

    def info(self, name: str) -> CheckpointInfo:
        if name not in self._infos:
            raise UnknownCheckpoint(name)
        info = self._infos[name]
        if info.step is None and name in self._loaded:
            info = dataclasses.replace(info, step=self._loaded[name].meta.get("step"))
        return info

    def model(self, name: str) -> Glam:
        if name not in self._paths:
            raise UnknownCheckpoint(
                f"unknown checkpoint {name!r}; registered: {', '.join(self._paths)}"
            )
        loaded = self._load(name)
        if _shape(loaded.config) != _shape(self.main.config):
            raise UnknownCheckpoint(f"checkpoint {name!r} has another shape than the model")
        return loaded.model


def _shape(config: GlamConfig | HFMoEConfig) -> GlamConfig | HFMoEConfig:
    """The config with what may differ between checkpoints of one model blanked out: the
    name, and an imported model's config.json as read (paths, versions, dtypes)."""
    if isinstance(config, HFMoEConfig):
        return config.replace(name="", source="{}")
    return config.replace(name="")
