"""`fluo serve` (the OTLP evaluator runtime) and `fluo signals` (what it stored)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from fluo_lang.cost import DEFAULT_BUDGET, DEFAULT_COST_LIMIT
from fluo_lang.diagnostics import nearest, plural
from fluo_lang.files import unreachable
from fluo_lang.one_value import OneValueCommand
from fluo_lang.values import NS_LIMIT, escape_json_text, format_duration, one_line
from fluo_run.cli import NonEmptyPath

from .config import (
    DEFAULT_DB,
    DEFAULT_GRPC,
    DEFAULT_HTTP,
    DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_MAX_HTTP_CONNECTIONS,
    DEFAULT_MAX_INFLIGHT_BYTES,
    DEFAULT_MAX_TRACE_AGE,
    ConfigError,
    ConfigFile,
    ServeConfig,
    default_rules,
    is_negative_duration,
    load_config_file,
    parse_address,
    parse_duration,
    parse_setting,
    redacted,
)
from .store import SEVERITY_ORDER, NotAStore, SignalFilter, SignalStore, error_code, is_corrupt, parse_time, recovery

OFF = ("off", "none", "false", "no", "0", "")
"""Values of --db, --grpc and the durations that may be off which turn them off (`db: no`, YAML 1.1's false, too);
--grpc refuses an empty value and `0` (`_grpc`)."""
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_CONFIG_FILE = "fluo.serve.config_file"
"""`ctx.meta` key of the `ConfigFile` read for --config, whose lines messages name (`setting_named`)."""


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"fluo: {message}", err=True)
    sys.exit(code)


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Read the --config file into the command's defaults (flags and FLUO_* variables win over it)."""
    if not value:
        return value

    def bad(message: str) -> click.UsageError:  # not BadParameter, whose hint would name FLUO_CONFIG
        return click.UsageError(f"--config {message}", ctx=ctx)

    try:
        file = load_config_file(value)
    except ConfigError as exc:
        raise bad(str(exc).removeprefix("--config: ")) from None
    ctx.meta[_CONFIG_FILE] = file
    known = {p.name: p for p in ctx.command.params if p.name and p.name != "config_file"}
    settings = dict(file.settings)
    for key, setting in file.settings.items():
        option = known.get(key)
        flag = key.replace("_", "-")
        if option is None:
            near = nearest(key, list(known))
            hint = f"; did you mean `{near.replace('_', '-')}`?" if near else ""
            raise bad(f"{file.where(key)}: unknown setting `{flag}`{hint}")
        if setting is None:  # YAML's null (`auth-token:`, a template left empty): no setting takes it as a meaning
            what, without = _NOT_EMPTY.get(
                key, ("a file", f"for ./{DEFAULT_DB}") if key == "db" else ("a value", "for the default")
            )
            raise bad(f"{file.where(key)}: `{flag}` has no value; give {what}, or leave `{flag}` out {without}")
        written = file.written.get(key)
        if isinstance(option, click.Option) and option.multiple:
            if not isinstance(setting, list):
                setting = [setting]  # `rules: rules/` is a list of one
                written = [written] if isinstance(written, str) else None
            if not all(isinstance(x, str | int | float) for x in setting):
                raise bad(f"{file.where(key)}: `{flag}` takes a value or a list of values")
        elif isinstance(setting, list | dict):
            raise bad(f"{file.where(key)}: `{flag}` takes one value, not a list or mapping")
        items = setting if isinstance(setting, list) else [setting]
        texts = written if isinstance(written, list) else [written]
        for item, text in zip(items, texts if len(texts) == len(items) else [None] * len(items), strict=True):
            mismatch = _wrong_scalar(option.type, item, text)
            if mismatch:
                raise bad(f"{file.where(key)}: `{flag}`: {mismatch}")
        if written is not None and not isinstance(option.type, _YAML_TYPED):
            setting = written  # as written: `off`, not False; `0123`, not 83; `2026-01-01`, not a date
        elif isinstance(option.type, click.types.BoolParamType) and isinstance(setting, int):
            setting = bool(setting)  # `no-db: 1`, as FLUO_NO_DB=1 (click's switch takes no number)
        try:  # here, where the file can be named: click would name the option and its FLUO_* variable
            option.type_cast_value(ctx, setting)
        except click.BadParameter as exc:
            raise bad(f"{file.where(key)}: `{flag}`: {exc.message}") from None
        settings[key] = setting
    ctx.default_map = {**(ctx.default_map or {}), **settings}
    return value


# Option types that take a --config value as YAML reads it (a number, true or false); the others take it as written.
_YAML_TYPED = (click.types.BoolParamType, click.types.IntParamType, click.types.FloatParamType)


def _wrong_scalar(kind: click.ParamType[Any], item: object, written: str | None) -> str:
    """Why a YAML scalar of the --config file, `written` so, cannot be a value of `kind` (click would crash on a
    number for a switch, and cut 10.9 down to 10 for a count); "" when it can."""
    shown = written if written is not None else str(item)
    if isinstance(kind, click.types.BoolParamType):  # 1 and 0 too, as FLUO_NO_DB takes them
        accepted = isinstance(item, bool | str) or (isinstance(item, int) and item in (0, 1))
        return "" if accepted else f"{shown} is not true or false"
    if isinstance(kind, click.types.IntParamType) and not isinstance(kind, click.types.FloatParamType):
        return "" if isinstance(item, int | str) and not isinstance(item, bool) else f"{shown} is not a whole number"
    if isinstance(kind, click.types.FloatParamType):
        return "" if isinstance(item, int | float | str) and not isinstance(item, bool) else f"{shown} is not a number"
    return ""


_NAMED = re.compile(r"(--[a-z][a-z-]*): ")


def from_config_file(ctx: click.Context, message: str, config_file: str | None) -> str:
    """`message` (a ConfigError's, "--trace-idle: ...") naming the --config file and key instead of the flag,
    when the setting it is about came from that file."""
    named = _NAMED.match(message)
    if config_file is None or named is None:
        return message
    name = named.group(1).removeprefix("--").replace("-", "_")
    if not any(p.name == name for p in ctx.command.params):
        return message
    if ctx.get_parameter_source(name) != ParameterSource.DEFAULT_MAP:
        return message
    file = ctx.meta.get(_CONFIG_FILE)
    where = file.where(name) if isinstance(file, ConfigFile) else config_file
    return f"--config {where}: `{named.group(1).removeprefix('--')}`: {message[named.end() :]}"


def setting_named(ctx: click.Context, flag: str, value: str) -> str:
    """A setting (`--trace-idle`, `5s`) named where it was given, so the user finds it, with its value as FLUO
    reads it: `--trace-idle 5s`, `FLUO_TRACE_IDLE=5s`, or `trace-idle: 5s` (--config fluo.yaml:3); a default
    shows as the flag."""
    name = flag.removeprefix("--").replace("-", "_")
    source = ctx.get_parameter_source(name)
    param = next((p for p in ctx.command.params if p.name == name), None)
    if source == ParameterSource.ENVIRONMENT and param is not None and isinstance(param.envvar, str):
        return f"{param.envvar}={value}"
    file = ctx.meta.get(_CONFIG_FILE)
    if source == ParameterSource.DEFAULT_MAP and isinstance(file, ConfigFile):
        return f"`{flag.removeprefix('--')}: {value}` (--config {file.where(name)})"
    return f"{flag} {value}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # UTC, marked so, as signals' times are (`fluo signals`): a local time without its offset could not be
    # lined up with them, nor with another host's log.
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger = logging.getLogger("fluo")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def _duration(value: Any, flag: str, *, allow_off: bool = False) -> float:
    """A duration setting in seconds; with `allow_off`, 0.0 for `off` (a zero duration is refused all the same:
    as for every other duration, 0 is no length, and it would turn the thing off without a word)."""
    text = str(value).strip()
    if allow_off and text.lower() in OFF:
        return 0.0
    seconds = parse_setting(text, flag)
    if allow_off and seconds <= 0:
        raise ConfigError(f"{flag}: must be more than 0; `off` turns it off")
    return seconds


# Settings an empty value would turn off without a word (most likely an unset shell variable: `--webhook "$URL"`):
# no authentication, or signals that reach no sink. Empty is a usage error, from a flag, the config file or a
# `FLUO_*` variable (which click takes for unset when empty). What to give, and what leaving it out means.
_NOT_EMPTY = {
    "auth_token": ("a token", "to accept exports unauthenticated"),
    "jsonl": ("a file or -", "to write no JSON lines"),
    "webhook": ("a URL", "to post to no webhook"),
    "otlp_logs": ("an endpoint", "to export no OTLP logs"),
}


def _empty_variables(ctx: click.Context) -> None:
    """Click takes an empty `FLUO_*` variable for an unset one; for a `_NOT_EMPTY` setting that is a usage error."""
    for p in ctx.command.params:
        if p.name not in _NOT_EMPTY or not isinstance(p.envvar, str) or os.environ.get(p.envvar, "x") != "":
            continue
        if ctx.get_parameter_source(p.name) == ParameterSource.DEFAULT:  # not given by a flag or the file
            what, without = _NOT_EMPTY[p.name]
            raise ConfigError(f"{p.envvar}: empty; give {what}, or unset it {without}")


def _grpc(value: Any) -> tuple[str, int] | None:
    """The --grpc address, None for off. Empty (`--grpc "$UNSET"`) and `0` (a port alone, where a port 0 picks a
    free one) are refused: they turned the receiver off without a word, and a Collector sending gRPC was refused."""
    text = str(value).strip()
    if not text:
        raise ConfigError(f"--grpc: empty; give HOST:PORT or `off`, or leave --grpc out for {DEFAULT_GRPC}")
    if text == "0":
        raise ConfigError("--grpc: '0' is not HOST:PORT; give e.g. 127.0.0.1:0 for a free port, or `off` for none")
    return None if text.lower() in OFF else parse_address(str(value), "--grpc")  # a space in it refused, as --http's


def build_config(options: dict[str, Any]) -> ServeConfig:
    """A `ServeConfig` from the command's options (flags, `FLUO_*` variables and the config file merged by click)."""
    grpc = _grpc(options["grpc"])
    if any(not str(p).strip() for p in options["rules"] or ()):
        raise ConfigError("--rules: empty; give a rule file or folder (`.` for the current folder)")
    rules = [Path(p) for p in options["rules"]] if options["rules"] else default_rules()
    if not str(options["db"]).strip():  # not "no store": that is --no-db (or --db off)
        raise ConfigError(f"--db: empty; give a file, or leave --db out for ./{DEFAULT_DB} (--no-db for no store)")
    db_text = "" if options["no_db"] else str(options["db"])
    headers: dict[str, str] = {}
    for h in options["webhook_header"] or ():
        name, sep, value = str(h).partition(":")
        if not sep or not name.strip():
            raise ConfigError(
                f"--webhook-header{_header_start(str(h))}: not `Name: value` (the rest is not shown: it may be a key)"
            )
        if "\r" in h or "\n" in h:  # would be refused at each POST, after signals were queued for it
            raise ConfigError(f"--webhook-header {name.strip()!r}: a header cannot hold a line break (CR or LF)")
        headers[name.strip()] = value.strip()
    for name, (what, without) in _NOT_EMPTY.items():
        value = options[name]
        if value is not None and not str(value).strip():
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag}: empty; give {what}, or leave {flag} out {without}")
    config = ServeConfig(
        grpc=grpc,
        http=parse_address(str(options["http"]), "--http"),
        metrics=parse_address(str(options["metrics"]), "--metrics") if options["metrics"] else None,
        rules=rules,
        cost_limit=int(options["cost_limit"]),
        eval_budget=int(options["eval_budget"]),
        trace_idle=_duration(options["trace_idle"], "--trace-idle"),
        max_trace_age=_duration(options["max_trace_age"], "--max-trace-age"),
        max_spans_per_trace=int(options["max_spans_per_trace"]),
        max_buffered_spans=int(options["max_buffered_spans"]),
        max_buffer_bytes=int(options["max_buffer_bytes"]),
        max_pending_spans=int(options["max_pending_spans"]),
        max_window_spans=int(options["max_window_spans"]),
        late_span_memory=_duration(options["late_span_memory"], "--late-span-memory"),
        window_grace=_duration(options["window_grace"], "--window-grace") if options["window_grace"] else None,
        reload_interval=_duration(options["reload_interval"], "--reload-interval", allow_off=True),
        db=None if db_text.lower() in OFF else Path(db_text),
        store_off="--no-db" if options["no_db"] else f"--db {db_text}",
        jsonl=options["jsonl"] or None,
        webhook=options["webhook"] or None,
        webhook_headers=headers,
        otlp_logs=options["otlp_logs"] or None,
        otlp_logs_protocol=str(options["otlp_logs_protocol"]),
        sink_queue=int(options["sink_queue"]),
        max_http_connections=int(options["max_http_connections"]),
        max_inflight_bytes=int(options["max_inflight_bytes"]),
        auth_token=options["auth_token"] or None,
        tls_cert=Path(options["tls_cert"]) if options["tls_cert"] else None,
        tls_key=Path(options["tls_key"]) if options["tls_key"] else None,
        shutdown_timeout=_duration(options["shutdown_timeout"], "--shutdown-timeout"),
    )
    config.check()
    return config


# Where a setting may come from, the one that wins first: a flag, a FLUO_* variable, the --config file.
_SOURCES = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.DEFAULT_MAP)


_HEADER_NAME = re.compile(r"\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)[^A-Za-z0-9!#$%&'*+.^_`|~-]")


def _header_start(text: str) -> str:
    """What a malformed `--webhook-header` may show of itself: the header name it starts with, when something
    follows it (`'Authorization' ... `), else nothing. The rest is the value, most often a credential."""
    found = _HEADER_NAME.match(text)
    return f" {found.group(1)!r} ..." if found else ""


def _settle_db(ctx: click.Context, options: dict[str, Any]) -> None:
    """`--db FILE` against `--no-db`: given from the same source (two flags, or both in the
    --config file) they are a usage error; from different ones, the winning source decides."""
    db_from, no_db_from = ctx.get_parameter_source("db"), ctx.get_parameter_source("no_db")
    if not options["no_db"] or db_from not in _SOURCES or str(options["db"]).strip().lower() in OFF:
        return
    if db_from == no_db_from:
        raise ConfigError(f"--db {options['db']} and --no-db: give one or the other")
    options["no_db"] = _SOURCES.index(db_from) > _SOURCES.index(no_db_from)


def _opt(name: str, env: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(name, envvar=env, show_envvar=True, **kw)


# What serve does with each sink setting, for the usage error when one is given twice.
_ONE_SINK = {
    "db": "serve writes one store",
    "jsonl": "serve writes one JSON-lines file",
    "webhook": "serve posts to one webhook",
    "otlp_logs": "serve exports to one OTLP logs endpoint",
}
_REPEATED = "fluo.serve.repeated"


class _OneSink(click.Option):
    """A sink setting taken once on the command line: click keeps the last of several without a word, and the
    signals meant for the others would go nowhere. The values of one given more than once are kept in
    `ctx.meta` for `_refuse_repeated_sinks`; the last is the option's value meanwhile."""

    refuses_repeats = True

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        parser.add_option(obj=self, opts=self.opts, dest=self.name, action="append", nargs=self.nargs)

    def handle_parse_result(
        self, ctx: click.Context, opts: Mapping[str, Any], args: list[str]
    ) -> tuple[Any, list[str]]:
        given = opts.get(self.name or "")
        if isinstance(given, list):
            if len(given) > 1:
                ctx.meta.setdefault(_REPEATED, {})[self.name] = given
            opts = {**opts, self.name or "": given[-1]}
        return super().handle_parse_result(ctx, opts, args)


def _refuse_repeated_sinks(ctx: click.Context) -> None:
    """A sink flag given twice (`--webhook A --webhook B`) is a usage error naming each."""
    for name, given in ctx.meta.get(_REPEATED, {}).items():
        flag = "--" + name.replace("_", "-")
        each = " and ".join(f"{flag} {redacted(str(value))}" for value in given)
        raise ConfigError(f"{each}: {_ONE_SINK[name]}; give one")


class _Separated(click.types.StringParamType):
    """A repeatable setting whose `FLUO_*` variable holds its values split on `separator`.

    Click splits on whitespace, which cuts a path with a space in it, and a `Name: value` header, in two.
    """

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def split_envvar_value(self, rv: str) -> list[str]:
        return [part for part in rv.split(self.separator) if part.strip()]


# FLUO_* variables of other tools (the editor extension's tests, golden-file updates), not serve settings.
_OTHER_VARIABLES = frozenset({"FLUO_PYTHON", "FLUO_UPDATE_GOLDEN"})


def _warn_unknown_variables(ctx: click.Context) -> None:
    """A `FLUO_*` variable that is no setting (a typo like FLUO_TRACE_IDEL) is ignored: say so."""
    known = {p.envvar for p in ctx.command.params if isinstance(p.envvar, str)} | _OTHER_VARIABLES
    for name in sorted(os.environ):
        if name.startswith("FLUO_") and name not in known:
            near = nearest(name, known)
            hint = f"; did you mean {near}?" if near else ""
            logging.getLogger("fluo.serve").warning("%s is not a setting of fluo serve; ignored%s", name, hint)


_F = TypeVar("_F", bound=Callable[..., Any])


class _ConfigOption(click.Option):
    """`--config`, whose usage errors name FLUO_CONFIG only when the file came from it (click names it always)."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        from_variable = ctx is not None and ctx.get_parameter_source(self.name or "") == ParameterSource.ENVIRONMENT
        return super().get_error_hint(ctx) if from_variable else click.Parameter.get_error_hint(self, ctx)


def _config_option(
    help: str, callback: Callable[[click.Context, click.Parameter, Any], Any] | None = None
) -> Callable[[_F], _F]:
    """`--config FILE` (FLUO_CONFIG): the YAML settings file of `fluo serve`, as `serve` and `signals` take it."""
    return click.option(
        "--config",
        "config_file",
        cls=_ConfigOption,
        envvar="FLUO_CONFIG",
        show_envvar=True,
        type=click.Path(),  # a folder is refused as an unreadable file is (`load_config_file`), not in click's words
        is_eager=True,
        callback=callback,
        help=help,
    )


class _ServeCommand(OneValueCommand):
    """`fluo serve` takes no arguments: rule paths given as `fluo check` takes them (`fluo serve rules/`) are
    refused with where they go."""

    allow_extra_args = True  # refused below, with the hint click's own refusal lacks

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        if ctx.args and not ctx.resilient_parsing:
            extra = " ".join(ctx.args)
            example = " ".join(f"--rules {shlex.quote(a)}" for a in ctx.args)
            raise click.UsageError(
                f"got unexpected extra argument{'s' if len(ctx.args) > 1 else ''} ({extra}): "
                f"rule paths go after --rules (fluo serve {example})",
                ctx,
            )
        return rest


@click.command(name="serve", cls=_ServeCommand)
@_config_option(
    "YAML file of settings, keys as flag names (trace-idle: 2s). Flags and FLUO_* variables win over it.",
    _load_config,
)
@_opt(
    "--grpc",
    "FLUO_GRPC",
    metavar="HOST:PORT",
    default=DEFAULT_GRPC,
    show_default=True,
    help="OTLP/gRPC address; port 0 picks one; off.",
)
@_opt(
    "--http",
    "FLUO_HTTP",
    metavar="HOST:PORT",
    default=DEFAULT_HTTP,
    show_default=True,
    help="OTLP/HTTP address (also /metrics).",
)
@_opt("--metrics", "FLUO_METRICS", metavar="HOST:PORT", default=None, help="Also serve /metrics on this HOST:PORT.")
@_opt(
    "--rules",
    "FLUO_RULES",
    metavar="PATH",
    multiple=True,
    type=_Separated(os.pathsep),
    help=f"Rule file or folder (repeatable; in FLUO_RULES separated by {os.pathsep!r}). Default ./rules, else bundled.",
)
@_opt(
    "--cost-limit",
    "FLUO_COST_LIMIT",
    default=DEFAULT_COST_LIMIT,
    type=click.IntRange(min=0),
    show_default=True,
    help="Reject a rule set with a rule estimated past this many span visits on a 1,000-span trace (FLUO404); 0: none.",
)
@_opt(
    "--eval-budget",
    "FLUO_EVAL_BUDGET",
    default=DEFAULT_BUDGET,
    type=click.IntRange(min=0),
    show_default=True,
    help="Span visits one trace or window may spend; past it, a fluo.evaluation_truncated signal. 0: unbounded.",
)
@_opt(
    "--trace-idle",
    "FLUO_TRACE_IDLE",
    metavar="DURATION",
    default="5s",
    show_default=True,
    help="Evaluate a trace this long after its last span.",
)
@_opt(
    "--max-trace-age",
    "FLUO_MAX_TRACE_AGE",
    metavar="DURATION",
    default=DEFAULT_MAX_TRACE_AGE,
    show_default=True,
    help="Evaluate a trace this long after its first span.",
)
@_opt(
    "--max-spans-per-trace",
    "FLUO_MAX_SPANS_PER_TRACE",
    default=10_000,
    type=int,
    show_default=True,
    help="Evaluate a trace early when it holds this many spans; its later spans are dropped as late.",
)
@_opt(
    "--max-buffered-spans",
    "FLUO_MAX_BUFFERED_SPANS",
    default=1_000_000,
    type=int,
    show_default=True,
    help="Spans held in traces being assembled; past it the oldest traces are evaluated early.",
)
@_opt(
    "--max-buffer-bytes",
    "FLUO_MAX_BUFFER_BYTES",
    default=DEFAULT_MAX_BUFFER_BYTES,
    type=int,
    show_default=True,
    help="Wire bytes the spans of traces being assembled may keep alive; past it the oldest traces are evaluated "
    "early (a trace of more bytes on its own at once).",
)
@_opt(
    "--max-pending-spans",
    "FLUO_MAX_PENDING_SPANS",
    default=200_000,
    type=int,
    show_default=True,
    help="Evaluation backlog past which exports are refused with a retryable 429 (gRPC: UNAVAILABLE).",
)
@_opt(
    "--max-window-spans",
    "FLUO_MAX_WINDOW_SPANS",
    default=1_000_000,
    type=int,
    show_default=True,
    help="Spans held in open windows for windowed rules; past it traces are counted, not held, and the window's "
    "signals are partial.",
)
@_opt(
    "--late-span-memory",
    "FLUO_LATE_SPAN_MEMORY",
    metavar="DURATION",
    default="5m",
    show_default=True,
    help=(
        "How long an evaluated trace id is remembered (at most 1,000,000 ids, ~115 bytes each); "
        "its spans arriving meanwhile are late (counted, dropped). Kept across a clean restart, beside --db."
    ),
)
@_opt(
    "--window-grace",
    "FLUO_WINDOW_GRACE",
    metavar="DURATION",
    default=None,
    help="Keep a window open this long past its end, at least --trace-idle (else a warning) [2 x trace-idle].",
)
@_opt(
    "--reload-interval",
    "FLUO_RELOAD_INTERVAL",
    metavar="DURATION",
    default="2s",
    show_default=True,
    help="Check rule files for changes; off.",
)
@_opt(
    "--db",
    "FLUO_DB",
    cls=_OneSink,
    metavar="FILE",
    default=DEFAULT_DB,
    show_default=True,
    help="SQLite file for signals (read by `fluo signals`); off: none, as --no-db.",
)
@_opt("--no-db", "FLUO_NO_DB", is_flag=True, help="Do not store signals in SQLite.")
@_opt(
    "--jsonl",
    "FLUO_JSONL",
    cls=_OneSink,
    metavar="FILE|-",
    default=None,
    help="Also append signals as JSON lines to FILE, or - for stdout.",
)
@_opt(
    "--webhook",
    "FLUO_WEBHOOK",
    cls=_OneSink,
    metavar="URL",
    default=None,
    help='Also POST {"signals": [...]} to this URL.',
)
@_opt(
    "--webhook-header",
    "FLUO_WEBHOOK_HEADER",
    metavar="HEADER",
    multiple=True,
    type=_Separated("\n"),
    help="'Name: value' header for the webhook (repeatable; in FLUO_WEBHOOK_HEADER one a line).",
)
@_opt(
    "--otlp-logs",
    "FLUO_OTLP_LOGS",
    cls=_OneSink,
    metavar="ENDPOINT",
    default=None,
    help="Also export signals as OTLP log records to ENDPOINT.",
)
@_opt(
    "--otlp-logs-protocol",
    "FLUO_OTLP_LOGS_PROTOCOL",
    default="http",
    show_default=True,
    type=click.Choice(["http", "grpc"]),
)
@_opt(
    "--sink-queue",
    "FLUO_SINK_QUEUE",
    default=10_000,
    type=int,
    show_default=True,
    help="Signals queued per sink before it drops (counted).",
)
@_opt(
    "--max-http-connections",
    "FLUO_MAX_HTTP_CONNECTIONS",
    default=DEFAULT_MAX_HTTP_CONNECTIONS,
    type=int,
    show_default=True,
    help="Connections open at once to each HTTP listener; past it the oldest idle one is closed (or, every one "
    "busy, the new one). A soft open-file limit (ulimit -n) too low for it is raised toward the hard one; what that "
    "leaves short lowers it, with a warning.",
)
@_opt(
    "--max-inflight-bytes",
    "FLUO_MAX_INFLIGHT_BYTES",
    default=DEFAULT_MAX_INFLIGHT_BYTES,
    type=int,
    show_default=True,
    help="Request body bytes held at once (OTLP/HTTP bodies and OTLP/gRPC messages), by all connections, received "
    "and not yet decoded; a body that would take more is answered a retryable 429 (gRPC: UNAVAILABLE) (unless it "
    "is the only one).",
)
@_opt(
    "--auth-token",
    "FLUO_AUTH_TOKEN",
    metavar="TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' (HTTP) / authorization metadata (gRPC).",
)
@_opt(
    "--tls-cert",
    "FLUO_TLS_CERT",
    default=None,
    type=click.Path(dir_okay=False),
    help="PEM certificate for both receivers.",
)
@_opt(
    "--tls-key", "FLUO_TLS_KEY", default=None, type=click.Path(dir_okay=False), help="PEM private key for --tls-cert."
)
@_opt(
    "--shutdown-timeout",
    "FLUO_SHUTDOWN_TIMEOUT",
    metavar="DURATION",
    default="20s",
    show_default=True,
    help="On SIGTERM/SIGINT, stop within this long; what is not evaluated or delivered by then is lost (exit 3).",
)
@_opt(
    "--log-level",
    "FLUO_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def command(config_file: str | None, log_level: str, **options: Any) -> None:
    """Evaluate live OpenTelemetry traces against the rules.

    Receives OTLP over gRPC and HTTP, assembles each trace, runs every rule on
    it, and sends signals to SQLite (`fluo signals` lists them) and any other
    sink given. SIGHUP (or a changed rule file) reloads the rules; SIGTERM or
    Ctrl-C stops after evaluating what is buffered (within --shutdown-timeout;
    a second signal stops at once, but the same one again within 1 s is taken
    as the same request, as a wrapper such as `timeout` delivers it twice). Exit status 0 on a clean shutdown, 1 when
    the rules have errors, a port cannot be bound or a sink cannot open (a
    --db or --jsonl path in a missing folder, a folder, not writable, not a
    FLUO store, a store another fluo serve writes), 2
    for a usage error (a bad setting; a rule path missing, unreadable or
    without .fluo files), 3 when it stopped but lost something (a signal not
    delivered, a trace or window not evaluated, a stop cut short).

    \b
    Examples:
      fluo serve --rules rules/
      FLUO_AUTH_TOKEN=... fluo serve --http 0.0.0.0:4318 --grpc 0.0.0.0:4317 --jsonl -
      OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf python app.py
    """
    from .rules import RulePathError, RuleSetError
    from .runtime import StartError, log_rule_problems, serve

    setup_logging(log_level)
    ctx = click.get_current_context()
    _warn_unknown_variables(ctx)
    try:
        _refuse_repeated_sinks(ctx)
        _settle_db(ctx, options)
        _empty_variables(ctx)
        config = build_config(options)
    except ConfigError as exc:
        _fail(from_config_file(ctx, str(exc), config_file))
        return
    for warning in config.warnings(lambda flag, value: setting_named(ctx, flag, value)):
        logging.getLogger("fluo.serve").warning("%s", warning)
    if not options["rules"] and config.rules != [Path("rules")]:
        logging.getLogger("fluo.serve").warning(
            "rules: no --rules and no ./rules folder, so running the bundled examples in %s "
            "(give --rules for your own)",
            config.rules[0],
        )
    try:
        code = asyncio.run(serve(config, exit_process=True))
    except RulePathError as exc:
        _fail(f"--rules: {exc}")
        return
    except RuleSetError as exc:
        log_rule_problems(exc)
        _fail(f"cannot start: {exc} ({', '.join(str(p) for p in config.rules)})", 1)
        return
    except (StartError, ConfigError) as exc:
        _fail(str(exc), 1)
        return
    sys.exit(code)


def _time_bound(text: str | None, flag: str) -> int | None:
    """`--since`/`--until` as nanoseconds since the epoch: a duration ago, or an RFC 3339 time (any year)."""
    if text is None:
        return None
    try:
        ago = parse_duration(text, flag) * 1e9
    except ConfigError:
        if is_negative_duration(text):
            _fail(f"{flag}: {text!r} is negative; a duration ago is written without a sign: {text.strip()[1:]}")
    else:
        if not ago < NS_LIMIT:
            _fail(f"{flag}: {text!r} is longer than a duration can be (about 292 years); give less or an RFC 3339 time")
        return time.time_ns() - int(ago)
    try:
        return parse_time(text)
    except ValueError:
        _fail(f"{flag}: {text!r} is neither a duration ago (15m) nor an RFC 3339 time (2026-01-01T00:00:00Z)")
    return None


def _to_second(time: str) -> str:
    """A signal's RFC 3339 time as the table shows it: `2026-01-01 00:00:06`, to the second."""
    return time.replace("T", " ")[:19]


def _where(s: dict[str, Any]) -> str:
    if s.get("trace_id"):
        return str(s["trace_id"])
    start, end = str(s.get("window_start")), str(s.get("window_end"))
    length = format_duration(parse_time(end) - parse_time(start))
    return f"window {_to_second(start)} +{length}"


def _message(s: dict[str, Any]) -> str:
    """A signal's message, after `(partial: seen A..B)` for a window serve did not see whole (its `partial`
    fields): a restart inside a window gives a row for each part, which would otherwise read as one twice."""
    message = str(s["message"])
    if not s.get("partial"):
        return message
    start, seen = str(s.get("window_start")), ""
    if s.get("observed_start") is not None and s.get("observed_end") is not None:
        day = _to_second(start)[:11]
        a, b = (_to_second(str(s[k])).removeprefix(day) for k in ("observed_start", "observed_end"))
        seen = f": seen {a}..{b}"
    return f"(partial{seen}) {message}"


def write_lines(lines: Sequence[str]) -> None:
    """`lines` to standard output in chunks of 10,000: one write per signal was most of the time."""
    out = sys.stdout
    for start in range(0, len(lines), 10_000):
        out.write("".join(line + "\n" for line in lines[start : start + 10_000]))
    out.flush()


NO_MATCH = (
    "no signals match (fluo serve evaluates a trace --trace-idle, 5s by default, after its last span: "
    "one that just ended may not be stored yet)"
)


def print_table(signals: list[dict[str, Any]]) -> None:
    if not signals:
        click.echo(NO_MATCH, err=True)
        return
    rows = [  # one line each, as `fluo eval --format text` prints them: a rule's text may hold control characters
        tuple(one_line(str(cell)) for cell in (_to_second(s["time"]), s["severity"], s["rule"], _where(s), _message(s)))
        for s in signals
    ]
    heads = ("TIME (UTC)", "SEVERITY", "RULE", "TRACE", "MESSAGE")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads[:-1])]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in (heads, *rows)]
    write_lines(lines)


LOCK_WAIT = 10.0
"""Seconds `fluo signals` waits for another program's lock on the store before saying it is locked."""


def unreadable(db: str, exc: BaseException) -> str:
    """Why `fluo signals` could not read the store, in words: read-only, locked, corrupt or foreign."""
    import sqlite3

    code = error_code(exc)
    if isinstance(exc, NotAStore):
        return f"not a FLUO signal store: {exc}"
    if is_corrupt(exc):
        return f"the store is corrupt ({exc}); {recovery(db)}"
    if code == sqlite3.SQLITE_NOTADB:
        return f"not an SQLite database, so not a FLUO signal store ({exc})"
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return f"locked by another program ({exc}); try again"
    if isinstance(exc, PermissionError) or not os.access(db, os.R_OK):
        return f"cannot read it: permission denied; ask for read access to {db}"
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
        folder = Path(db).parent
        return (
            f"cannot read it without writing beside it ({exc}): while `fluo serve` writes it, or after it stopped "
            f"uncleanly, SQLite needs {Path(db).name}-shm in {folder} to read it; ask for write access to "
            f"{folder}, or read a copy (sqlite3 {db} '.backup copy.db')"
        )
    return f"cannot read it ({exc})"


def _store_from_config(ctx: click.Context, config_file: str) -> str | None:
    """The store of `fluo serve`'s --config file (FLUO_CONFIG), its `db`: None if it has none, "" if serve writes
    none with it (no-db). Its other settings are serve's, and are not looked at."""
    try:
        file = load_config_file(config_file)
    except ConfigError as exc:
        raise click.UsageError(f"--config {str(exc).removeprefix('--config: ')}", ctx) from None
    if "db" in file.settings:
        db = file.written.get("db")
        if file.settings["db"] is None:
            raise click.UsageError(f"--config {file.where('db')}: `db` has no value; give a file, or leave it out", ctx)
        if not isinstance(db, str):
            raise click.UsageError(f"--config {config_file}: `db` takes one file name", ctx)
        if not db.strip():
            raise click.UsageError(f"--config {config_file}: `db`: empty; give a file, or leave it out", ctx)
        return "" if db.strip().lower() in OFF else db
    written = file.written.get("no_db")
    try:  # as written, so `no-db: 1` too, as serve takes it
        no_db = isinstance(written, str) and click.BOOL.convert(written, None, None)
    except click.BadParameter:
        no_db = False  # not a value serve takes
    return "" if no_db else None


@click.command(name="signals", cls=OneValueCommand)
@_config_option(
    "The YAML settings file of `fluo serve`: its `db` is the store read, unless --db or FLUO_DB is given"
    " (then it is not read)."
)
@click.option(
    "--db",
    envvar="FLUO_DB",
    show_envvar=True,
    default=DEFAULT_DB,
    show_default=True,
    type=NonEmptyPath(dir_okay=False),
    help="The SQLite file `fluo serve` writes.",
)
@click.option("--rule", "rules", multiple=True, help="Only this rule (repeatable).")
@click.option("--severity", type=click.Choice(SEVERITY_ORDER), help="Only signals at least this severe.")
@click.option("--since", help="Signal time from: a duration ago (15m) or an RFC 3339 time (UTC if no offset).")
@click.option("--until", help="Signal time before: a duration ago or an RFC 3339 time (UTC if no offset).")
@click.option(
    "--trace",
    "trace_id",
    help="Only this trace id (32 hex digits): its signals, and windowed ones with a span of it (`trace_ids`).",
)
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(min=1), help="At most this many, the newest."
)
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table", show_default=True)
def signals_command(
    config_file: str | None,
    db: str,
    rules: tuple[str, ...],
    severity: str | None,
    since: str | None,
    until: str | None,
    trace_id: str | None,
    limit: int,
    fmt: str,
) -> None:
    """List the signals `fluo serve` stored, oldest first (the newest --limit of them).

    Times are the signal's time: the end of the trace or window that fired. A window serve did not see
    whole (a restart inside it) has its message start with the part it saw: (partial: seen A..B).

    \b
    Examples:
      fluo signals --severity error --since 1h
      fluo signals --rule auth_retry_storm --format jsonl | jq .trace_id
    """
    if trace_id is not None and not _TRACE_ID.fullmatch(trace_id):
        _fail(f"--trace: {trace_id!r} is not a trace id; give its 32 hex digits, e.g. 4bf92f3577b34da6a3ce929d0e0e4736")
    where = SignalFilter(
        rules=rules,
        min_severity=severity,
        since_ns=_time_bound(since, "--since"),
        until_ns=_time_bound(until, "--until"),
        trace_id=trace_id,
        limit=limit + 1,  # one more, to know whether --limit left some out
    )
    from_config = False
    ctx = click.get_current_context()
    if config_file and ctx.get_parameter_source("db") == ParameterSource.DEFAULT:
        configured = _store_from_config(ctx, config_file)  # not read when --db or FLUO_DB names the store
        if configured == "":
            _fail(f"--config {config_file}: `fluo serve` writes no signal store with these settings (no-db); give --db")
        elif configured is not None:
            db, from_config = configured, True
    named = f" (the `db` of --config {config_file})" if from_config else ""
    if (cannot := unreachable(db)) is not None:  # a folder on the way cannot be searched
        _fail(f"{db}{named}: {unreadable(db, cannot)}")
    if not os.path.isfile(db):
        _fail(f"{db}{named}: no signal store here; run `fluo serve` (or `fluo demo`) first, or give --db FILE")
    import sqlite3

    why_none: list[str] = []
    try:
        store = SignalStore(db, create=False, timeout=LOCK_WAIT)
        try:
            texts = store.query_texts(where)  # stored as `dump_json(signal)`, as jsonl prints
            if not texts:
                why_none = _why_none_match(store, rules, severity, since, until, trace_id)
        finally:
            store.close()
    except (sqlite3.DatabaseError, NotAStore, OSError) as exc:
        _fail(f"{db}: {unreadable(db, exc)}")
        return
    if len(texts) > limit:  # oldest first: the extra one is the oldest
        texts = texts[1:]
        click.echo(f"fluo: the newest {plural(limit, 'matching signal')}; there are more (--limit N shows N)", err=True)
    if fmt == "jsonl":  # escaped again: a store written before `dump_json` escaped controls holds them raw
        write_lines([escape_json_text(t) for t in texts])
    else:
        print_table([json.loads(t) for t in texts])
    for line in why_none:
        click.echo(f"fluo: {one_line(line)}", err=True)
    sys.exit(0)


def _why_none_match(
    store: SignalStore,
    rules: Sequence[str],
    severity: str | None,
    since: str | None,
    until: str | None,
    trace_id: str | None,
) -> list[str]:
    """What the store holds, when the options given match none of it: a `--rule` it holds no signal of (with the
    rule meant, if one is a typo away), else how many signals the options left out."""
    total = store.count()
    if not total or not (rules or severity or since or until or trace_id):
        return []
    held = f"{total:,} signal{'' if total == 1 else 's'}"
    stored = store.rules_stored()
    unknown = [r for r in dict.fromkeys(rules) if r not in stored]
    if unknown:
        named = ", ".join(
            f"`{r}`" + (f" (did you mean `{near}`?)" if (near := nearest(r, stored)) else "") for r in unknown
        )
        return [f"the store holds {held}, none of {'rule' if len(unknown) == 1 else 'rules'} {named}"]
    given = [
        f"{flag} {value}"
        for flag, value in (
            ("--rule", ", ".join(rules)),
            ("--severity", severity),
            ("--since", since),
            ("--until", until),
            ("--trace", trace_id),
        )
        if value
    ]
    return [f"the store holds {held}, none matching {' '.join(given)}"]


__all__ = ["command", "signals_command"]
