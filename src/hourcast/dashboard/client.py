"""The dashboard's HTTP client of the prediction API (``ApiClient``).

Every failure becomes a ``DashboardError`` with a message a person can act on, without credentials. An
answer is accepted only if it matches the API's own schema (``hourcast.serving.schema``: ``Prediction``,
``Performance``, ``Scoreboard``, ``ModelCard``).
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import pandas as pd
from pydantic import BaseModel, ValidationError

from hourcast.errors import HourcastError
from hourcast.redact import redact
from hourcast.serving.schema import ModelCard, Performance, Prediction, Scoreboard

HISTORY_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
PREDICTION_TIMES = ["as_of", "target_time"]
_ERROR_TEXT_LIMIT = 300
ModelT = TypeVar("ModelT", bound=BaseModel)


class DashboardError(HourcastError):
    """A failure to get data from the prediction API, worded for the person looking at the dashboard."""

    def __init__(self, message: str) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message


class ApiClient:
    """Reads predictions and candle history from the hourcast prediction API."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def prediction(self, symbol: str) -> dict[str, Any]:
        """The API's current next-hour prediction for ``symbol``; one from stale features comes flagged
        ``stale`` (the page says so) rather than refused."""
        payload = self._json("POST", "/predict", json={"symbol": symbol, "allow_stale": True})
        try:
            Prediction.model_validate(payload)
            for key in PREDICTION_TIMES:
                pd.Timestamp(payload[key])
        except ValidationError as exc:
            raise DashboardError(
                f"{self._name} sent a prediction the dashboard cannot read: {_problems(exc.errors())}"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise DashboardError(f"{self._name} sent a prediction the dashboard cannot read: {exc}") from exc
        return payload

    def history(self, symbol: str, hours: int) -> pd.DataFrame:
        """The last ``hours`` closed candles of ``symbol``, oldest first: ``ts`` (UTC) and float prices."""
        payload = self._json("GET", "/history", params={"symbol": symbol, "hours": hours})
        try:
            frame = pd.DataFrame(payload["candles"], columns=HISTORY_COLUMNS)
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
            return frame.astype({column: "float64" for column in HISTORY_COLUMNS[1:]})
        except (TypeError, ValueError, KeyError) as exc:
            raise DashboardError(f"{self._name} sent a history the dashboard cannot read: {exc}") from exc

    def performance(self, symbol: str, hours: int) -> Performance:
        """How the served forecasts of ``symbol`` fared over the last ``hours`` (``GET /performance``)."""
        return self._model(Performance, "GET", "/performance", params={"symbol": symbol, "hours": hours})

    def scoreboard(self, symbol: str) -> Scoreboard:
        """The rolling scoreboard of ``symbol``, every window (``GET /scoreboard``)."""
        return self._model(Scoreboard, "GET", "/scoreboard", params={"symbol": symbol})

    def model_card(self) -> ModelCard:
        """The served model's training window and gate figures (``GET /model``)."""
        return self._model(ModelCard, "GET", "/model")

    def _model(self, schema: type[ModelT], method: str, path: str, **kwargs: Any) -> ModelT:
        payload = self._json(method, path, **kwargs)
        try:
            return schema.model_validate(payload)
        except ValidationError as exc:
            raise DashboardError(
                f"{self._name} sent a {path} answer the dashboard cannot read: {_problems(exc.errors()[:3])}"
            ) from exc

    @property
    def _name(self) -> str:
        return f"prediction API at {self.base_url}"

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request; the decoded JSON object of a 2xx answer, else a ``DashboardError``."""
        try:
            response = httpx.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise DashboardError(f"{self._name} is not reachable ({exc})") from exc
        except httpx.TimeoutException as exc:
            raise DashboardError(f"{self._name} did not answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise DashboardError(f"request to {self._name} failed: {exc}") from exc
        if response.status_code == 503:
            raise DashboardError(f"{self._name} says: {_error_text(response)}")
        if response.status_code >= 400:
            kind = "rejected the request" if response.status_code < 500 else "failed"
            raise DashboardError(
                f"{self._name} {kind} (HTTP {response.status_code}): {_error_text(response)}"
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise DashboardError(f"{self._name} answered {path} with something that is not JSON") from exc
        if not isinstance(payload, dict):
            raise DashboardError(f"{self._name} answered {path} with JSON that is not an object")
        return payload


def _problems(errors: list[Any]) -> str:
    """Pydantic validation errors as ``field.path: message; ...``."""
    return "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in errors)


def _error_text(response: httpx.Response) -> str:
    """The ``error`` of the API's error body (``detail``/``message`` of other servers), else the body's text,
    shortened and without credentials."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("error", "detail", "message"):
            if payload.get(key):
                text = str(payload[key])
                break
        else:
            text = response.text
    else:
        text = response.text
    text = redact(" ".join(text.split())) or response.reason_phrase or "no message"
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[: _ERROR_TEXT_LIMIT - 1] + "…"
