"""Candle batch validation with Great Expectations (GX Core 1.x); the suite is defined in code.

Every batch is validated before it is stored. Timeframe alignment and closedness are checked on
derived columns (``ts_offset_ms``, ``close_ms``) added to a copy of the batch; the exchange clock
is the suite parameter ``exchange_now_ms``, supplied at validation time. ``great_expectations``
takes seconds to import, so it is only imported inside the functions that need it.

Each expectation has a *scope* (``meta["scope"]``):

* ``row`` rules (nulls, prices > 0, OHLC consistency, volume >= 0, a unique key, alignment to the
  timeframe) condemn single rows: GX names them (``unexpected_index_list``), those rows are set aside
  and the valid rows of the batch are stored;
* ``batch`` rules (exact columns, dtypes, the timeframe, no candle from the exchange's future) mean the
  page itself cannot be trusted: the whole batch is set aside and the run stops. A row rule GX could
  not evaluate (an exception, no row indices) counts as a batch failure too.

A zero-volume candle is valid (real feeds have flat, zero-volume hours): ``volume >= 0``.

The order flow (``quote_volume, trades, taker_buy_base, taker_buy_quote``, Binance only) may be null: an
exchange that does not publish it gives NaN. Where present it must be ``>= 0``, with
``taker_buy_base <= volume`` and ``taker_buy_quote <= quote_volume``: one row rule on the derived column
``order_flow_margin`` (the least of the four values and the two differences, nulls left out; null when the
row has no order flow), as one expectation costs about as much as six on a GX run.

Every rule is per row or per ``(exchange, symbol, timeframe, ts)``, so many series' batches can be checked in
one GX run (``CandleValidator.validate_batches``: one run per ingestion round, whatever the number of
symbols) and the result split back into one report per batch, as if each had been validated alone.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hourcast import atomic
from hourcast.compat.great_expectations import hide_progress_bars, validation_page_html
from hourcast.data.candles import (
    CANDLE_COLUMNS,
    KEY_COLUMNS,
    ORDER_FLOW_COLUMNS,
    PRICE_COLUMNS,
    VALUE_COLUMNS,
)
from hourcast.timeframe import timeframe_ms

if TYPE_CHECKING:
    import great_expectations as gx

SUITE_NAME = "candles"
DERIVED_COLUMNS = ["ts_offset_ms", "close_ms", "order_flow_margin"]
COLUMN_DTYPES = {
    "exchange": "string",
    "symbol": "string",
    "timeframe": "string",
    "ts": "datetime64[ms, UTC]",
    **dict.fromkeys([*VALUE_COLUMNS, *ORDER_FLOW_COLUMNS], "float64"),
}
REQUIRED_COLUMNS = [*KEY_COLUMNS, *VALUE_COLUMNS]
"""The columns that may not be null (the order flow may)."""
EXAMPLES = 3

_RESULT_FORMAT = {"result_format": "COMPLETE"}  # every failing row's index, not the first 20
ROW, BATCH = "row", "batch"
_EPOCH = pd.Timestamp(0, tz="UTC")
_ONE_MS = pd.Timedelta(milliseconds=1)
_PARTIAL = 20  # GX's length of the partial_unexpected lists


def _rule(rule: str, explanation: str | None = None, scope: str = ROW) -> dict[str, Any]:
    """Expectation keyword arguments naming ``rule`` and its ``scope`` (meta, for messages and for what
    a failure sets aside) and describing it (Data Docs)."""
    description = f"{rule}: {explanation}" if explanation else rule
    return {"meta": {"rule": rule, "scope": scope}, "description": description}


def build_candle_suite(timeframe: str) -> gx.ExpectationSuite:
    """The ``candles`` expectation suite for batches of ``timeframe`` candles (see module docstring)."""
    import great_expectations as gx

    expect = gx.expectations
    step = timeframe_ms(timeframe)
    return gx.ExpectationSuite(
        name=SUITE_NAME,
        expectations=[
            expect.ExpectTableColumnsToMatchSet(
                column_set=[*CANDLE_COLUMNS, *DERIVED_COLUMNS],
                exact_match=True,
                **_rule(
                    "columns are exactly " + ", ".join(CANDLE_COLUMNS),
                    "derived check columns " + ", ".join(DERIVED_COLUMNS) + " are added before validation",
                    BATCH,
                ),
            ),
            *(
                expect.ExpectColumnTypeToBe(
                    column=column, type_=dtype, **_rule(f"{column} has dtype {dtype}", scope=BATCH)
                )
                for column, dtype in COLUMN_DTYPES.items()
            ),
            *(
                expect.ExpectColumnValuesToNotBeNull(column=column, **_rule(f"{column} is not null"))
                for column in REQUIRED_COLUMNS
            ),
            expect.ExpectColumnValuesToBeInSet(
                column="timeframe", value_set=[timeframe], **_rule(f"timeframe is {timeframe}", scope=BATCH)
            ),
            *(
                expect.ExpectColumnValuesToBeBetween(
                    column=column, min_value=0, strict_min=True, **_rule(f"{column} > 0")
                )
                for column in PRICE_COLUMNS
            ),
            *(
                expect.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="high",
                    column_B=column,
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                    **_rule(f"high >= {column}", "high >= max(open, close)"),
                )
                for column in ("open", "close")
            ),
            *(
                expect.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=column,
                    column_B="low",
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                    **_rule(f"low <= {column}", "low <= min(open, close)"),
                )
                for column in ("open", "close")
            ),
            expect.ExpectColumnValuesToBeBetween(column="volume", min_value=0, **_rule("volume >= 0")),
            expect.ExpectColumnValuesToBeBetween(
                column="order_flow_margin",
                min_value=0,
                **_rule(
                    "order flow >= 0, taker_buy_base <= volume, taker_buy_quote <= quote_volume",
                    "order_flow_margin = min(" + ", ".join(ORDER_FLOW_COLUMNS) + ", volume - taker_buy_base, "
                    "quote_volume - taker_buy_quote), nulls left out; a candle without order flow passes",
                ),
            ),
            expect.ExpectCompoundColumnsToBeUnique(
                column_list=KEY_COLUMNS, **_rule("(" + ", ".join(KEY_COLUMNS) + ") is unique")
            ),
            expect.ExpectColumnValuesToBeBetween(
                column="ts_offset_ms",
                min_value=0,
                max_value=0,
                **_rule(f"ts is aligned to {timeframe}", f"ts_ms % {step} == 0"),
            ),
            expect.ExpectColumnValuesToBeBetween(
                column="close_ms",
                max_value={"$PARAMETER": "exchange_now_ms"},
                **_rule(
                    "candle is closed at exchange_now_ms",
                    f"floor(ts_ms, {step}) + {step} <= exchange_now_ms (only closed periods are stored)",
                    BATCH,
                ),
            ),
        ],
    )


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating one batch: plain-English failures plus the GX result as a JSON dict.

    ``rejected_rows`` are the positions of the rows failing a row rule; ``batch_failed`` says a batch rule
    failed (or a row rule could not name its rows), so no row of the batch may be stored.
    """

    success: bool
    failures: list[str]
    result: dict[str, Any]
    rows: int
    rejected_rows: list[int] = field(default_factory=list)
    batch_failed: bool = False


class CandleValidator:
    """Holds one GX ephemeral context + suite + batch definition; reuse it for many batches (fast path)."""

    def __init__(self, timeframe: str) -> None:
        import great_expectations as gx

        self.timeframe = timeframe
        self._step = timeframe_ms(timeframe)
        context = gx.get_context(mode="ephemeral")
        hide_progress_bars(context)
        asset = context.data_sources.add_pandas(SUITE_NAME).add_dataframe_asset(SUITE_NAME)
        self._batch_definition = asset.add_batch_definition_whole_dataframe(SUITE_NAME)
        self._suite = context.suites.add(build_candle_suite(timeframe))
        self._order = {expectation.meta["rule"]: i for i, expectation in enumerate(self._suite.expectations)}

    def validate(self, batch: pd.DataFrame, exchange_now_ms: int) -> ValidationReport:
        """Validate a candle frame against the suite, the exchange clock being ``exchange_now_ms``."""
        frame, stamps = self._checked_frame(batch)
        return self._report(self._run(frame, exchange_now_ms), len(frame), stamps)

    def validate_batches(
        self, batches: Sequence[pd.DataFrame], exchange_now_ms: int
    ) -> list[ValidationReport]:
        """One report per batch from ONE GX run over all of them concatenated (see the module docstring).

        A failure GX cannot pin on rows (the columns or dtypes of the whole table, an error) cannot be
        split: then each batch is validated on its own, so one bad batch never condemns the others; so are
        batches whose columns or dtypes differ (concatenating them would fill or cast what GX must see).
        """
        layouts = {
            tuple((str(name), str(dtype)) for name, dtype in batch.dtypes.items()) for batch in batches
        }
        if len(batches) <= 1 or len(layouts) > 1:
            return [self.validate(batch, exchange_now_ms) for batch in batches]
        frame, stamps = self._checked_frame(pd.concat(batches, ignore_index=True))
        result = self._run(frame, exchange_now_ms)
        if any(not outcome["success"] and _unattributed(outcome) for outcome in result["results"]):
            return [self.validate(batch, exchange_now_ms) for batch in batches]
        bounds = np.cumsum([0, *(len(batch) for batch in batches)]).tolist()
        rules = [_RowRule.of(outcome, frame) for outcome in result["results"]]
        return [
            self._report(
                _slice_result(result, rules, len(frame), lo, hi),
                hi - lo,
                stamps.iloc[lo:hi],  # read by position
            )
            for lo, hi in pairwise(bounds)
        ]

    def _checked_frame(self, batch: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        """The batch with the derived check columns, and its ``ts`` as UTC stamps."""
        stamps = _utc_stamps(batch)
        open_ms = (stamps - _EPOCH) / _ONE_MS
        frame = batch.reset_index(drop=True).assign(
            ts_offset_ms=(open_ms % self._step).to_numpy(),
            close_ms=(open_ms - open_ms % self._step + self._step).to_numpy(),  # its period's close
            order_flow_margin=_order_flow_margin(batch),
        )
        return frame, stamps

    def _run(self, frame: pd.DataFrame, exchange_now_ms: int) -> dict[str, Any]:
        """One GX validation of a checked frame, as GX's JSON result."""
        from great_expectations.core.run_identifier import RunIdentifier

        result = self._batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
            self._suite,
            expectation_parameters={"exchange_now_ms": exchange_now_ms},
            result_format=_RESULT_FORMAT,
        )
        result.meta["run_id"] = RunIdentifier(
            run_name=f"candles {self.timeframe}", run_time=datetime.now(UTC)
        )
        return result.to_json_dict()

    def _report(self, result: dict[str, Any], rows: int, stamps: pd.Series) -> ValidationReport:
        """The report of a GX JSON result over ``rows`` rows."""
        failed = sorted(
            (outcome for outcome in result["results"] if not outcome["success"]),
            key=lambda outcome: self._order[outcome["expectation_config"]["meta"]["rule"]],
        )
        rejected: set[int] = set()
        batch_failed = False
        for outcome in failed:
            indices = outcome["result"].get("unexpected_index_list")
            if outcome["expectation_config"]["meta"]["scope"] == BATCH or _unattributed(outcome):
                batch_failed = True  # a row rule that cannot say which rows: trust none
            else:
                rejected.update(int(index) for index in indices)
        return ValidationReport(
            success=bool(result["success"]),
            failures=[_failure_line(outcome, rows, stamps) for outcome in failed],
            result=result,
            rows=rows,
            rejected_rows=sorted(rejected),
            batch_failed=batch_failed,
        )


def _order_flow_margin(batch: pd.DataFrame) -> np.ndarray:
    """Per row, the least of the order-flow values and of ``volume - taker_buy_base`` and ``quote_volume -
    taker_buy_quote`` (negative: a rule broken), nulls left out; NaN for a row without order flow (or a batch
    without the columns, which the columns rule condemns)."""
    if not set(ORDER_FLOW_COLUMNS) <= set(batch.columns) or "volume" not in batch:
        return np.full(len(batch), np.nan)
    numbers = batch[["volume", *ORDER_FLOW_COLUMNS]].apply(pd.to_numeric, errors="coerce")  # dtypes: GX's
    volume, values = numbers["volume"].to_numpy("float64"), numbers[ORDER_FLOW_COLUMNS].to_numpy("float64")
    differences = [volume - values[:, 2], values[:, 0] - values[:, 3]]
    with np.errstate(invalid="ignore"):
        return np.fmin.reduce(np.column_stack([values, *differences]), axis=1)


def _unattributed(outcome: dict[str, Any]) -> bool:
    """Whether a GX expectation result cannot name the rows it condemns (a rule of the whole table, or
    an error)."""
    return outcome["result"].get("unexpected_index_list") is None or bool(
        _exception_messages(outcome.get("exception_info") or {})
    )


@dataclass(frozen=True)
class _RowRule:
    """A row rule's outcome over the combined frame, prepared once to be split into many batches."""

    indices: np.ndarray  # the failing rows, ascending
    values: list[Any]  # their values, in the same order
    missing: np.ndarray | None  # cumulative count of rows with a checked column null (None: not counted)

    @classmethod
    def of(cls, outcome: dict[str, Any], frame: pd.DataFrame) -> _RowRule | None:
        """None for a rule of the whole table (no row indices)."""
        details = outcome["result"]
        indices = details.get("unexpected_index_list")
        if indices is None:
            return None
        values = details.get("unexpected_list") or []
        if len(values) != len(indices):  # GX leaves some values out (e.g. nulls): keep the rows, not them
            values = [None] * len(indices)
        order = np.argsort(np.asarray(indices, dtype="int64"), kind="stable")
        missing = None
        if "missing_count" in details:
            kwargs = outcome["expectation_config"]["kwargs"]
            columns = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
            nulls = frame[columns + kwargs.get("column_list", [])].isna().any(axis=1).to_numpy()
            missing = np.concatenate([[0], np.cumsum(nulls)])
        return cls(np.asarray(indices, dtype="int64")[order], [values[i] for i in order], missing)


def _slice_result(
    result: dict[str, Any], rules: list[_RowRule | None], total: int, lo: int, hi: int
) -> dict[str, Any]:
    """The GX JSON result of rows ``lo..hi-1`` of the validated frame, as GX would have reported them alone:
    row rules keep only those rows' indices (renumbered from 0) and values, with their counts; rules of the
    whole table are the same for every part."""
    outcomes = []
    for outcome, rule in zip(result["results"], rules, strict=True):
        if rule is None:
            outcomes.append(outcome)
            continue
        details = outcome["result"]
        first, last = np.searchsorted(rule.indices, [lo, hi]).tolist()
        kept = list(zip((rule.indices[first:last] - lo).tolist(), rule.values[first:last], strict=True))
        missing = int(rule.missing[hi] - rule.missing[lo]) if rule.missing is not None else 0
        rows = hi - lo
        unexpected = [value for _, value in kept]
        checked = max(rows - missing, 1)
        part = {
            **details,
            "element_count": rows,
            "unexpected_count": len(kept),
            "unexpected_percent": 100.0 * len(kept) / checked,
            "unexpected_list": unexpected,
            "unexpected_index_list": [i for i, _ in kept],
            "partial_unexpected_list": unexpected[:_PARTIAL],
            "partial_unexpected_index_list": [i for i, _ in kept][:_PARTIAL],
            "partial_unexpected_counts": [
                {"value": json.loads(value), "count": count}
                for value, count in Counter(json.dumps(v) for v in unexpected[:_PARTIAL]).most_common()
            ],
            "unexpected_index_query": f"df.filter(items={[i for i, _ in kept]}, axis=0)",
        }
        if "missing_count" in details:
            part |= {
                "missing_count": missing,
                "missing_percent": 100.0 * missing / max(rows, 1),
                "unexpected_percent_total": 100.0 * len(kept) / max(rows, 1),
                "unexpected_percent_nonmissing": 100.0 * len(kept) / checked,
            }
        outcomes.append({**outcome, "success": not kept, "result": part})
    passed = sum(outcome["success"] for outcome in outcomes)
    statistics = {
        "evaluated_expectations": len(outcomes),
        "successful_expectations": passed,
        "unsuccessful_expectations": len(outcomes) - passed,
        "success_percent": 100.0 * passed / max(len(outcomes), 1),
    }
    meta = {**result["meta"], "rows_of_combined_batch": [lo, hi], "combined_batch_rows": total}
    return {
        **result,
        "success": passed == len(outcomes),
        "results": outcomes,
        "statistics": statistics,
        "meta": meta,
    }


def _utc_stamps(batch: pd.DataFrame) -> pd.Series:
    """``ts`` as UTC timestamps (naive taken as UTC); all NaT when it is missing or not datetimes."""
    if "ts" in batch and pd.api.types.is_datetime64_any_dtype(batch["ts"]):
        return pd.to_datetime(batch["ts"], utc=True).reset_index(drop=True)
    return pd.Series(pd.NaT, index=range(len(batch)), dtype="datetime64[ms, UTC]")


def _failure_line(outcome: dict[str, Any], rows: int, stamps: pd.Series) -> str:
    """One plain-English line for a failed expectation (GX JSON): rule, rows failing, 3 example ``ts``."""
    rule = outcome["expectation_config"]["meta"]["rule"]
    errors = _exception_messages(outcome.get("exception_info") or {})
    if errors:
        return f"{rule}: could not be checked ({'; '.join(errors)})"
    details = outcome["result"]
    if "unexpected_count" not in details:
        mismatch = details.get("details", {}).get("mismatched")
        if mismatch:
            return f"{rule}: " + "; ".join(f"{kind} {', '.join(names)}" for kind, names in mismatch.items())
        return f"{rule}: found {details.get('observed_value')}"
    labels = dict.fromkeys(
        _ts_label(stamps, index) for index in details.get("partial_unexpected_index_list", [])
    )
    examples = ", ".join(list(labels)[:EXAMPLES])
    return f"{rule}: {details['unexpected_count']} of {rows} rows fail" + (
        f" (e.g. ts={examples})" if examples else ""
    )


def _exception_messages(info: dict[str, Any]) -> list[str]:
    """Distinct error messages of a result's ``exception_info``.

    GX 1.24 reports an expectation's own error as one flat dict, but errors of the metrics it needs
    (e.g. a missing column) as a dict of such dicts keyed by metric id.
    """
    entries = (
        [info]
        if "raised_exception" in info
        else [entry for entry in info.values() if isinstance(entry, dict)]
    )
    return list(
        dict.fromkeys(str(entry["exception_message"]) for entry in entries if entry.get("raised_exception"))
    )


def _ts_label(stamps: pd.Series, index: int) -> str:
    """``2024-01-03T05:00:00Z`` for the row at ``index``, or ``<row N>`` when it has no usable ``ts``."""
    stamp = stamps.iloc[index]
    if pd.isna(stamp):
        return f"<row {index}>"
    return stamp.isoformat().replace("+00:00", "Z")


def render_html(report: ValidationReport) -> str:
    """GX's Data Docs rendering (validation results page) of the report's result, as an HTML string."""
    return validation_page_html(report.result)


def latest_report_stem(exchange: str, symbol: str, timeframe: str) -> str:
    """File stem of a series' latest validation report in the validation folder."""
    return f"{exchange}_{symbol.replace('/', '-')}_{timeframe}_latest"


def write_report(report: ValidationReport, directory: Path, stem: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` (the whole report) and ``<stem>.html`` atomically; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = atomic.write_text(directory / f"{stem}.json", json.dumps(asdict(report), indent=2))
    html_path = atomic.write_text(directory / f"{stem}.html", render_html(report))
    return json_path, html_path


def publish_latest(report: ValidationReport, directory: Path, stem: str) -> bool:
    """Keep ``<stem>.json|.html`` as a series' latest validation result, rendering GX's HTML page (the
    slow part) only when the outcome (success and failed rules) differs from the one already published.
    Returns whether it wrote."""
    json_path, html_path = directory / f"{stem}.json", directory / f"{stem}.html"
    if json_path.exists() and html_path.exists():
        try:
            published = json.loads(json_path.read_text())
        except ValueError:
            published = {}
        if (published.get("success"), published.get("failures")) == (report.success, report.failures):
            return False
    write_report(report, directory, stem)
    return True
