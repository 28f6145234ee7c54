"""Templating, aliases, tables and dry-run reports: pure functions, no shell, no network."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace

import pandas as pd
import pytest
from anthropic.types import ModelInfo

from nbclaude.models import ALIASES, models_table, resolve_model
from nbclaude.prices import PRICES, DryRun, price_for
from nbclaude.request import Options, build_body
from nbclaude.templates import (
    TemplateError,
    fill_templates,
    format_value,
    markdown_table,
    template_names,
)

NAMESPACE = {
    "name": "Ada",
    "n": 3,
    "obj": SimpleNamespace(attr="deep", inner=SimpleNamespace(value=42)),
}

PASS_THROUGH = [
    "plain text",
    "{name}",
    "{}",
    "{0} and {1!r:>10}",
    'f"{name!r} is {n:>4}"',
    'f"{{{name}}}"',
    "{{{name}}}",
    "{{ name }}}",
    "{{{ name }}",
    '{"a": {"b": [1, 2]}, "c": {}}',
    "def f(x):\n    return {k: v for k, v in x.items()}\n",
    "{{x+1}}",
    "{{ n + 1 }}",
    "{{ not a name }}",
    "{{ name() }}",
    "{{ obj['k'] }}",
    "{{ 1name }}",
    "{{ name. }}",
    "{{ .name }}",
    "{{ if }}",
    "{{ obj.class }}",
    "{{\nname\n}}",
    "{{}}",
    "{{ }}",
    "\\frac{a}{b}",
]


@pytest.mark.parametrize("text", PASS_THROUGH)
def test_everything_but_a_dotted_name_passes_through_exactly(text: str) -> None:
    assert fill_templates(text, NAMESPACE) == text
    assert template_names(text) == []


@pytest.mark.parametrize(
    ("text", "filled"),
    [
        ("{{name}}", "Ada"),
        ("{{ name }}", "Ada"),
        ("{{\tname  }}", "Ada"),
        ("Hi {{ name }}, {{n}} times: {{ name }}!", "Hi Ada, 3 times: Ada!"),
        ("{{ obj.attr }}", "deep"),
        ("{{ obj.inner.value }}", "42"),
        ("{name} and {{ name }} and {}", "{name} and Ada and {}"),
        ('{"user": "{{ name }}"}', '{"user": "Ada"}'),
    ],
)
def test_dotted_names_are_filled(text: str, filled: str) -> None:
    assert fill_templates(text, NAMESPACE) == filled


def test_values_are_not_filled_twice() -> None:
    namespace = {"a": "{{ b }}", "b": "never"}
    assert fill_templates("{{ a }}", namespace) == "{{ b }}"


def test_unicode_names_are_names() -> None:
    assert fill_templates("{{ café }}", {"café": "au lait"}) == "au lait"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ missing }}", "name 'missing' is not defined"),
        ("{{ obj.nope }}", "obj (SimpleNamespace) has no attribute 'nope'"),
        ("{{ obj.inner.nope }}", "obj.inner (SimpleNamespace) has no attribute 'nope'"),
    ],
)
def test_undefined_names_and_attributes_raise(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fill_templates(text, NAMESPACE)


def test_a_failing_property_is_a_template_error() -> None:
    class Broken:
        @property
        def value(self) -> str:
            raise ValueError("no value today")

    with pytest.raises(TemplateError, match="raised ValueError: no value today"):
        fill_templates("{{ b.value }}", {"b": Broken()})


def test_values_use_str_and_strings_stay_as_they_are() -> None:
    assert format_value("  spaced\n") == "  spaced\n"
    assert format_value([1, "a"]) == "[1, 'a']"
    assert format_value(None) == "None"
    assert format_value(1.5) == "1.5"


def test_dataframe_is_a_markdown_table_with_its_shape() -> None:
    frame = pd.DataFrame({"city": ["Paris", "Oslo"], "temp": [21.5, 12.0]})
    assert format_value(frame) == (
        "DataFrame: 2 rows × 2 columns\n"
        "\n"
        "|  | city | temp |\n"
        "|---|---|---|\n"
        "| 0 | Paris | 21.5 |\n"
        "| 1 | Oslo | 12.0 |"
    )
    assert fill_templates("Data:\n{{ df }}\nDone.", {"df": frame}).startswith(
        "Data:\nDataFrame: 2 rows × 2 columns\n\n|  | city | temp |"
    )


def test_series_is_a_markdown_table_with_its_length() -> None:
    series = pd.Series([1, 2], index=pd.Index(["a", "b"], name="key"), name="count")
    assert format_value(series) == (
        "Series 'count': 2 rows\n\n| key | count |\n|---|---|\n| a | 1 |\n| b | 2 |"
    )


def test_long_and_wide_frames_keep_both_ends() -> None:
    frame = pd.DataFrame({f"c{j}": range(j, j + 100) for j in range(30)})
    table = markdown_table(frame, max_rows=4, max_columns=4)
    lines = table.splitlines()
    assert lines[0] == (
        "DataFrame: 100 rows × 30 columns "
        "(showing first and last 2 rows and first and last 2 columns)"
    )
    assert lines[2] == "|  | c0 | c1 | … | c28 | c29 |"
    assert lines[4] == "| 0 | 0 | 1 | … | 28 | 29 |"
    assert lines[6] == "| … | … | … | … | … | … |"
    assert lines[-1] == "| 99 | 99 | 100 | … | 127 | 128 |"
    assert len(lines) == 2 + 2 + 5


def test_table_cells_are_escaped_and_cut() -> None:
    frame = pd.DataFrame({"a|b": ["x | y", "line\nbreak", "z" * 200]})
    lines = markdown_table(frame, max_chars=10).splitlines()
    assert lines[2] == "|  | a\\|b |"
    assert lines[4] == "| 0 | x \\| y |"
    assert lines[5] == "| 1 | line break |"
    assert lines[6] == "| 2 | zzzzzzzzz… |"


def test_multiindex_labels_are_joined() -> None:
    frame = pd.DataFrame([[1]], columns=pd.MultiIndex.from_tuples([("a", "b")]))
    assert "| a / b |" in markdown_table(frame)


def test_importing_nbclaude_does_not_import_pandas() -> None:
    code = (
        "import sys, nbclaude, nbclaude.magic, nbclaude.core, nbclaude.log, nbclaude.chat\n"
        "from nbclaude.templates import fill_templates\n"
        "fill_templates('{{ x }}', {'x': 1})\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_aliases_resolve_to_priced_sdk_models() -> None:
    assert resolve_model("opus") == "claude-opus-4-6"
    assert resolve_model("sonnet") == "claude-sonnet-4-6"
    assert resolve_model("haiku") == "claude-haiku-4-5"
    assert resolve_model("claude-opus-4-5") == "claude-opus-4-5"
    assert resolve_model("fast", {"fast": "claude-haiku-4-5"}) == "claude-haiku-4-5"
    assert resolve_model("opus", {"opus": "claude-opus-4-5"}) == "claude-opus-4-5"
    for model in ALIASES.values():
        assert model in PRICES


def test_prices_go_by_the_exact_model_or_its_dated_snapshot_only() -> None:
    assert price_for("claude-haiku-4-5-20251001") == PRICES["claude-haiku-4-5"]
    assert price_for("claude-opus-4-20250514") == PRICES["claude-opus-4"]
    assert price_for("claude-sonnet-4-6") == PRICES["claude-sonnet-4-6"]
    # A newer model is not priced like the older one whose id it extends.
    for unknown in ("claude-opus-4-7", "claude-opus-4-8", "claude-sonnet-4-6-turbo", "x"):
        assert price_for(unknown) is None, unknown


def test_build_params_puts_history_before_the_prompt() -> None:
    history = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": [{"type": "text", "text": "1"}]},
    ]
    params = build_body("two", Options("m", 10, system="S", chat="main"), history)
    assert params == {
        "model": "m",
        "max_tokens": 10,
        "system": "S",
        "messages": [*history, {"role": "user", "content": "two"}],
    }


def test_dry_run_report_shows_request_tokens_and_cost() -> None:
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    dry_run = DryRun.priced(request, 2_000)
    assert dry_run.input_cost == pytest.approx(2_000 * 3.0 / 1e6)
    assert dry_run.max_output_cost == pytest.approx(1_000 * 15.0 / 1e6)
    report = dry_run.report()
    assert report.startswith("Dry run: nothing was sent to the Messages API.\nPOST /v1/messages\n")
    assert '"content": "hi"' in report
    assert report.endswith(
        "2,000 input tokens (count_tokens) · input $0.0060 uncached at claude-sonnet-4-6 list "
        "price · up to $0.0150 more for 1,000 output tokens"
    )
    unpriced = DryRun.priced({**request, "model": "mystery"}, 5)
    assert unpriced.input_cost is None
    assert unpriced.report().endswith("5 input tokens (count_tokens) · no known price for mystery")


def test_models_table_lists_models_and_their_aliases() -> None:
    created = datetime(2026, 2, 17, tzinfo=UTC)
    models = [
        ModelInfo(
            id="claude-sonnet-4-6",
            display_name="Claude Sonnet 4.6",
            created_at=created,
            type="model",
            lifecycle="active",
        )
    ]
    table = models_table(models, {"fast": "claude-sonnet-4-6"})
    lines = table.splitlines()
    assert lines[0].split() == ["model", "name", "released", "aliases"]
    assert lines[1].split("  ")[0] == "claude-sonnet-4-6"
    assert lines[1].endswith("2026-02-17  fast, sonnet")
    assert lines[-1] == (
        "Aliases for models not listed: haiku → claude-haiku-4-5, opus → claude-opus-4-6."
    )
