"""The Gradio dashboard: a client of the HTTP API that draws the last hours, the next-hour projection and
the track record.

* ``client``: the API client (``ApiClient``): requests, answers validated against the response schema,
  every failure a ``DashboardError``;
* ``figures``: the Plotly figures and Markdown summaries, pure functions of the answers;
* ``layout``: the Gradio page (``build_app``) and its callbacks.

It talks to the API over HTTP only; from the package it needs the response schema (``hourcast.serving``).

May import: ``hourcast.serving.schema`` and the top-level modules.
"""
