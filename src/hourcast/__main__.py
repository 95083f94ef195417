"""``python -m hourcast``: the command line."""

from hourcast.cli import app

app()
