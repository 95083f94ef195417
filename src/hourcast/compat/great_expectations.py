"""Great Expectations' non-public API: the progress-bar setting's type, and the Data Docs page renderer.

GX 1.x marks its public API with ``@public_api``; what is used here is not marked. GX is imported inside the
functions (it takes seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

DISTRIBUTION = "great-expectations"
CHECKED_VERSIONS = ">=1.24.1,<1.25"
"""Checked against Great Expectations 1.24.1."""


def hide_progress_bars(context: AbstractDataContext) -> None:
    """Stop ``context`` drawing progress bars (on stderr, at every validation).

    Why not public: ``context.variables.progress_bars`` is a documented setting, but its value type,
    ``great_expectations.data_context.types.base.ProgressBarsConfig``, is not part of the public API."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)


def validation_page_html(result: dict[str, Any]) -> str:
    """GX's Data Docs page of one validation result (given in its JSON form), as an HTML string.

    Why not public: GX renders Data Docs only as a whole site written to a store
    (``context.build_data_docs``); the result schema, page renderer and view it uses for one page
    (``expectationSuiteValidationResultSchema``, ``ValidationResultsPageRenderer``, ``DefaultJinjaPageView``)
    are not part of the public API."""
    from great_expectations.core.expectation_validation_result import expectationSuiteValidationResultSchema
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    loaded = expectationSuiteValidationResultSchema.load(result)
    return DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(loaded))
