"""The model the Bento service declares on its class: the production model, as a BentoML model reference.

Resolved when the service instance first reads it (in ``__init__``), never at import: from the registry's
production pointer (``HOURCAST_HOME/registry``), else the newest stored version of the model, which in a
Bento running without the registry folder is the model packaged with it. ``bentoml build`` packages the
model it resolves to.
"""

from __future__ import annotations

from typing import Any

from bentoml.exceptions import NotFound
from bentoml.models import BentoModel

from hourcast.compat.bentoml import ModelReference
from hourcast.model import registry
from hourcast.settings import Settings


class ProductionModel(ModelReference[Any]):
    """A BentoML model reference that resolves to the production model at resolution time."""

    def reference(self) -> BentoModel:
        """The concrete model this resolves to right now."""
        settings = Settings()
        tag = registry.production_tag(settings.registry_dir, settings.model_name)
        return BentoModel(tag or f"{settings.model_name}:latest")

    def to_info(self, alias: str | None = None) -> Any:
        """What ``bentoml build`` records (and packages)."""
        return self.reference().to_info(alias)

    @classmethod
    def from_info(cls, info: Any) -> BentoModel:
        """Inside a built Bento: the exact packaged model."""
        return BentoModel.from_info(info)

    def to_create_schema(self) -> Any:
        """For pushing the model to a remote registry."""
        return self.reference().to_create_schema()

    def resolve(self, base_path: Any = None) -> Any:
        """The stored model (``bentoml.Model``); ``NotFound`` if none is stored here (never looked up in
        a remote registry)."""
        reference = self.reference()
        if reference.stored is None:
            raise NotFound(
                f"no stored model {reference.tag} in the BentoML model store: run `hourcast train`"
            )
        return reference.resolve(base_path)

    def __str__(self) -> str:
        return "the production model (registry pointer, else the newest stored)"
