"""``python -m hourcast``: the command line."""

from hourcast.cli.app import app

app()
