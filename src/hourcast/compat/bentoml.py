"""BentoML's private API: the base class of its model references (``ModelReference``).

Importing this module imports BentoML (a base class must exist to be subclassed): import it only where
BentoML is imported anyway (``hourcast.model.served_model``).
"""

from __future__ import annotations

from _bentoml_sdk.models import Model

DISTRIBUTION = "bentoml"
CHECKED_VERSIONS = ">=1.4.39,<1.5"
"""Checked against BentoML 1.4.39."""

ModelReference = Model
"""BentoML's base class of model references (``_bentoml_sdk.models.Model``): a class attribute of a service
that is an instance of it is a model the service declares (listed in ``Service.models``, packaged by
``bentoml build``, resolved on first read from an instance). A subclass implements ``to_info``,
``from_info``, ``to_create_schema`` and ``resolve``.

Why private: the public ``bentoml.models.BentoModel`` and ``HuggingFaceModel`` each name one fixed model; a
reference that picks its model when it is resolved must subclass their base, which BentoML exports only from
``_bentoml_sdk``."""
