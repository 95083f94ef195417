"""Which library warnings hourcast's processes hide: the deprecations Feast (and ibis under it) and BentoML
(and pathspec under it) raise, which say nothing a user or an operator can act on."""

from __future__ import annotations

import warnings

NOISY_MODULES = ("feast", "ibis", "bentoml", "_bentoml_sdk", "_bentoml_impl", "pathspec")


def quiet_known_deprecations() -> None:
    """Hide the deprecation warnings of ``NOISY_MODULES``. Targeted by category and module: any other
    warning, and any deprecation raised by other code, is still shown.

    Importing Feast runs ``warnings.simplefilter("once", DeprecationWarning)`` (feast/feature_store.py and
    others), which goes ahead of every filter set before it, so this is called again once Feast is imported
    (``featurestore.repo_config``)."""
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        for module in NOISY_MODULES:
            warnings.filterwarnings("ignore", category=category, module=rf"{module}(\.|$)")
    warnings.filterwarnings("ignore", message=r"GitWildMatchPattern \('gitwildmatch'\) is deprecated")
