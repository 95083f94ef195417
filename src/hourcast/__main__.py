"""``python -m hourcast``: the command line."""

from hourcast.cli.main import app

app()
