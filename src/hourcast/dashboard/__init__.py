"""The Gradio dashboard: a client of the HTTP API that draws the last hours, the next-hour projection and
the track record (``app``).

It talks to the API over HTTP only; from the package it needs the response schema (``hourcast.serving``).

May import: ``hourcast.serving.schema`` and the top-level modules.
"""
