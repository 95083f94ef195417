"""The feature command: ``materialize`` the stored candles into the feature table and the online store."""

from __future__ import annotations

import sys
from typing import Annotated

from hourcast.cli import render
from hourcast.cli.options import json_option, resolved_settings


def materialize(as_json: Annotated[bool, json_option("the summary as one JSON object")] = False) -> None:
    """Refresh the feature table from the stored candles and materialize it into the online store."""
    from hourcast.features import featurestore

    settings = resolved_settings()
    print(f"online store: {featurestore.describe_online_store(settings)}", file=sys.stderr)
    render.materialize_summary(featurestore.materialize(settings), as_json)
