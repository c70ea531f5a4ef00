"""What one `fluo serve` process is told: addresses, rules, limits, sinks, access.

Every setting has a flag, a `FLUO_*` environment variable and a key in the
YAML file given with `--config`; the flag wins over the variable, the variable
over the file, the file over the default.
"""

from __future__ import annotations

import bisect
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fluo_run
from fluo_lang.api import decode_source, read_file
from fluo_lang.cost import DEFAULT_BUDGET, DEFAULT_COST_LIMIT
from fluo_lang.parser import DURATION_UNITS
from fluo_lang.values import format_duration

MAX_CONFIG_BYTES = 1 << 20
"""The largest `--config` file read: settings are a few lines; a link to `/dev/zero` or a log named by mistake is
refused, not read into memory (`read_file`)."""
DEFAULT_GRPC = "127.0.0.1:4317"
DEFAULT_HTTP = "127.0.0.1:4318"
DEFAULT_MAX_TRACE_AGE = "60s"
DEFAULT_DB = "fluo-signals.db"
DEFAULT_MAX_BUFFER_BYTES = 128 * 1024 * 1024
"""`--max-buffer-bytes`: the wire bytes the spans of traces being assembled may keep alive."""
DEFAULT_MAX_HTTP_CONNECTIONS = 1024
"""`--max-http-connections`: connections open at once to each HTTP listener."""
DEFAULT_MAX_INFLIGHT_BYTES = 256 * 1024 * 1024
"""`--max-inflight-bytes`: request body bytes held at once (OTLP/HTTP and OTLP/gRPC), received and not yet decoded."""

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zµ]+)\s*")


class ConfigError(Exception):
    """A setting that cannot be used; its message is one line naming the setting and what to give."""


MAX_SETTING_SECONDS = 365 * 86_400
"""The longest duration setting: past it, a typo (and timers that would overflow), not a choice."""


def parse_duration(text: str, setting: str) -> float:
    """A FLUO duration (`200ms`, `5s`, `1.5m`) as seconds."""
    m = _DURATION.fullmatch(text)
    if m is None or m.group(2) not in DURATION_UNITS:
        if is_negative_duration(text):
            raise ConfigError(f"{setting}: {text!r} is negative; a duration is a length of time, e.g. 5s")
        units = ", ".join(DURATION_UNITS)
        raise ConfigError(f"{setting}: {text!r} is not a duration; give a number and a unit ({units}), e.g. 5s")
    return float(m.group(1)) * DURATION_UNITS[m.group(2)] / 1e9


def is_negative_duration(text: str) -> bool:
    """Whether `text` is a duration with a minus sign before it (`-1s`)."""
    sign, _, rest = text.strip().partition("-")
    m = _DURATION.fullmatch(rest)
    return not sign and m is not None and m.group(2) in DURATION_UNITS


def parse_setting(text: str, setting: str) -> float:
    """A duration setting of the runtime (`--trace-idle 5s`) as seconds, at most `MAX_SETTING_SECONDS`."""
    seconds = parse_duration(text, setting)
    if not seconds <= MAX_SETTING_SECONDS:
        raise ConfigError(f"{setting}: {text!r} is longer than a runtime setting may be (at most 365d)")
    return seconds


def parse_address(text: str, setting: str) -> tuple[str, int]:
    """HOST:PORT, an IPv6 host in one pair of brackets (`[::1]:4318`); port 0 picks a free port. The port in
    ASCII digits (`host:٣` was port 3), and no space in it (`" 127.0.0.1:0"` kept the space in the host)."""
    port_example = {"--grpc": "4317", "--metrics": "9464"}.get(setting, "4318")  # 9464: OpenTelemetry's Prometheus port
    if any(c.isspace() for c in text):
        raise ConfigError(f"{setting}: {text!r} has a space; give HOST:PORT without one, e.g. 127.0.0.1:{port_example}")
    host, sep, port = text.rpartition(":")
    bracketed = host[:1] == "[" and host[-1:] == "]"
    if bracketed:
        host = host[1:-1]
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ConfigError(
            f"{setting}: {text!r} is not HOST:PORT; give e.g. 127.0.0.1:{port_example} (port 0 picks a free one)"
        )
    if "[" in host or "]" in host or (":" in host and not bracketed):  # `[::1:0`, `::1]:0`, `::1` (host `:`)
        raise ConfigError(
            f"{setting}: {text!r} is not HOST:PORT; an IPv6 host goes in brackets, e.g. [::1]:{port_example}"
        )
    return host, int(port)


_USERINFO = re.compile(r"//[^/?#\s]*@")
"""The user info of a URL, up to the last `@` of its authority: a password may hold an unencoded `@`, and a
user name alone may be the key (`https://KEY@host`, as a Sentry DSN has it, sent as Basic auth `KEY:`)."""
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]*)=([^&#\s]*)")
"""A query parameter and its value, up to the next parameter, fragment or whitespace (see `_hide_value`)."""
_SENTENCE_END = ".,:;"
"""One of these ending a query value ends the sentence around the URL (`?t=KEY: refused`), and shows."""
_CLOSERS = {")": "(", "'": "'", '"': '"'}
"""A bracket or quote ending a query value shows when it closes the one just before the URL (`(…?t=KEY)`,
`'…?t=KEY'`)."""
_SCHEME = r"\b[A-Za-z][A-Za-z0-9+.-]*://"
_URL_HEAD = re.compile(_SCHEME)
"""Where a URL starts, its scheme (`_hide_value` looks at the character before it)."""


def _hide_value(m: re.Match[str], heads: list[int]) -> str:
    """A query parameter with its value as `***`. What ends the sentence or closes the bracket or quote just
    before the URL shows after it: one of `_SENTENCE_END` last, and before it that closer (`'…?t=KEY'.`). Anything
    else, punctuation included, is hidden: it may be the end of the secret (`?t=s3cr3t!!`, `?k=:)`, and the `'` of
    `it's https://h/?t=KEY'`)."""
    value = m[2]
    cut = len(value)
    if cut and value[cut - 1] in _SENTENCE_END:
        cut -= 1
    if cut and value[cut - 1] in _CLOSERS:
        head = bisect.bisect_left(heads, m.start()) - 1  # `heads`: where the text's URLs start, in order
        if head >= 0 and heads[head] > 0 and m.string[heads[head] - 1] == _CLOSERS[value[cut - 1]]:
            cut -= 1
    return f"{m[1]}=***{value[cut:]}"


_URL_START = rf"{_SCHEME}[^/?#\s]*"
_PATH_REST = re.compile(rf"({_URL_START}/[^/?#\s]*)/[^?#\s'\"]+")
"""The path of a URL past its first segment, where chat webhooks carry their key (Slack's
`/services/T/B/KEY`, Discord's `/api/webhooks/ID/TOKEN`)."""
_FRAGMENT = re.compile(rf"({_URL_START}[^#\s'\"]*)#[^\s'\"]+")


def redacted(text: str) -> str:
    """`text` with the secrets a webhook or OTLP endpoint URL in it may carry shown as `***`: its user info,
    user name and password (`https://***@host`), its path past the first segment
    (`https://hooks.slack.com/services/***`), its fragment (`#***`), and the value of each query parameter
    (`?token=***`), all places chat webhooks put their key. Every log line, error and label that shows such a
    URL shows it so."""
    text = _PATH_REST.sub(r"\1/***", _USERINFO.sub("//***@", text))
    text = _FRAGMENT.sub(r"\1#***", text)
    heads = [h.start() for h in _URL_HEAD.finditer(text)]
    return _QUERY_VALUE.sub(lambda m: _hide_value(m, heads), text)


def check_url(url: str, setting: str, example: str) -> None:
    """An http or https URL with a host, as the webhook and OTLP logs sinks take."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is no number or past 65535
        valid = False
    if not valid:
        raise ConfigError(f"{setting}: {redacted(url)!r} is not an http(s) URL with a host; give e.g. {example}")


REMEMBERED_SUFFIX = ".trace-ids"
"""The file beside the store that holds the ids of the traces evaluated before a restart (`state.py`)."""

LOCK_SUFFIX = ".lock"
"""The file beside the store that `fluo serve` holds locked (flock) while it writes the store: one serve per store."""

PRIVATE_MODE = 0o600
"""The mode of the files serve makes (the store and SQLite's beside it, the lock, the remembered ids, the JSON
lines): they hold span data, readable by their owner only whatever the umask. A file already there keeps its own."""

STORE_FILES = ("", "-wal", "-shm", "-journal", REMEMBERED_SUFFIX, LOCK_SUFFIX)
"""The files of the store `--db FILE`: FILE, SQLite's beside it, the remembered trace ids and the lock."""


def beside(path: Path, suffix: str) -> Path:
    """`path` with `suffix` added to its name; also for a path without a name (`.`, `/`: a folder, which
    the store then refuses to open, saying so), where `Path.with_name` raises."""
    named = path if path.name else Path(os.path.abspath(path))
    return named.parent / (named.name + suffix)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same once resolved (symlinks, `..`), or one file under two names
    (a hard link) when both exist."""
    if os.path.realpath(a) == os.path.realpath(b):  # never raises: Path.resolve does on a symlink loop
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_apart(db: Path, jsonl: Path) -> None:
    """ConfigError when `--jsonl` names the store's database or one of its side files (`same_file`):
    the SQLite pages and the JSON lines would overwrite each other."""
    for end in STORE_FILES:
        store_file = beside(db, end)
        if same_file(store_file, jsonl):
            what = "the same file" if not end else f"{store_file}, a file of the store"
            raise ConfigError(f"--db {db} and --jsonl {jsonl}: {what}; give --jsonl a file of its own")


def no_passphrase() -> bytes:
    """The password callback for a TLS key: an encrypted key is refused (OpenSSL would ask on the terminal)."""
    raise ConfigError("is encrypted (it has a passphrase); give a key without one: openssl pkey -in KEY -out KEY2")


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server's TLS context from PEM files; `ssl.SSLError` (or ConfigError, a key with a passphrase)
    when they are not a certificate and its key (`check_tls` says which)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key), password=no_passphrase)
    return ctx


def check_tls(cert: Path, key: Path) -> None:
    """ConfigError naming the file and the problem, when `cert` and `key` are not a PEM certificate and its
    key: both receivers load them only once the rules are loaded and the sinks open, and gRPC with its own
    TLS library; OpenSSL's own error ("PEM lib") names neither the file nor what is wrong with it."""
    texts = {}
    for path, flag in ((cert, "--tls-cert"), (key, "--tls-key")):
        try:
            texts[flag] = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(f"{flag} {path}: cannot read it: {exc.strerror or exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in texts["--tls-cert"]:
        raise ConfigError(f"--tls-cert {cert}: no PEM certificate in it (a -----BEGIN CERTIFICATE----- block)")
    if not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", texts["--tls-key"]):
        raise ConfigError(f"--tls-key {key}: no PEM private key in it (a -----BEGIN PRIVATE KEY----- block)")
    try:
        tls_context(cert, key)
    except ConfigError as exc:
        raise ConfigError(f"--tls-key {key}: {exc}") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"--tls-key {key}: not the key of the certificate in --tls-cert {cert}") from None
        raise ConfigError(f"--tls-cert {cert} / --tls-key {key}: not a certificate and its key ({exc})") from None


def bundled_rules() -> Path | None:
    """The example rules shipped with FLUO: in the installed package, else in the source checkout."""
    package = Path(fluo_run.__file__).resolve().parent
    for candidate in (package / "examples" / "rules", package.parent / "examples" / "rules"):
        if candidate.is_dir():
            return candidate
    return None


def default_rules() -> list[Path]:
    """`./rules` when it exists, else the bundled examples."""
    local = Path("rules")
    if local.is_dir():
        return [local]
    bundled = bundled_rules()
    if bundled is None:
        raise ConfigError("--rules: no ./rules folder and no bundled examples; give --rules PATH")
    return [bundled]


@dataclass
class ServeConfig:
    """Everything the runtime needs; durations in seconds, addresses as (host, port)."""

    grpc: tuple[str, int] | None = ("127.0.0.1", 4317)
    http: tuple[str, int] = ("127.0.0.1", 4318)
    metrics: tuple[str, int] | None = None
    rules: list[Path] = field(default_factory=list)
    cost_limit: int = DEFAULT_COST_LIMIT
    eval_budget: int = DEFAULT_BUDGET
    trace_idle: float = 5.0
    max_trace_age: float = 60.0
    max_spans_per_trace: int = 10_000
    max_buffered_spans: int = 1_000_000
    max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES
    max_pending_spans: int = 200_000
    max_window_spans: int = 1_000_000
    late_span_memory: float = 300.0
    window_grace: float | None = None
    reload_interval: float = 2.0
    db: Path | None = Path(DEFAULT_DB)
    store_off: str = "--no-db"
    """The setting that left `db` None, as given (`--no-db`, `--db off`), for the log."""
    jsonl: str | None = None
    webhook: str | None = None
    webhook_headers: dict[str, str] = field(default_factory=dict)
    otlp_logs: str | None = None
    otlp_logs_protocol: str = "http"
    sink_queue: int = 10_000
    auth_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    max_http_connections: int = DEFAULT_MAX_HTTP_CONNECTIONS
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    shutdown_timeout: float = 20.0

    def _check_addresses(self) -> None:
        """Two listeners on one address: the second could never bind (a port 0 picks a free one for each)."""
        given = [("--http", self.http), ("--grpc", self.grpc), ("--metrics", self.metrics)]
        for i, (flag, address) in enumerate(given):
            for other, taken in given[:i]:
                if address is None or address != taken or address[1] == 0:
                    continue
                where = f"{flag} {address[0]}:{address[1]} is the {other} address"
                if (flag, other) == ("--metrics", "--http"):
                    raise ConfigError(
                        f"{where}: /metrics is served there already; leave --metrics out, or give another port"
                    )
                raise ConfigError(f"{where} too: give each its own port")

    @property
    def grace(self) -> float:
        """How long past its end a window stays open for traces still being assembled."""
        return self.window_grace if self.window_grace is not None else 2 * self.trace_idle

    def warnings(self, named: Callable[[str, str], str] = lambda flag, value: f"{flag} {value}") -> list[str]:
        """Settings that are allowed but work against each other, one line each, to log at start.

        `named(flag, value)` names a setting (`--trace-idle`, `5s`) where it was given: a flag, a `FLUO_*` variable,
        or the --config file's key and line (`serve.cli.setting_named`)."""
        out = []
        if self.grace < self.trace_idle:
            grace, idle = (format_duration(round(x * 1e9)) for x in (self.grace, self.trace_idle))
            out.append(
                f"{named('--window-grace', grace)} is shorter than {named('--trace-idle', idle)}: a trace is"
                f" evaluated {idle} after its last span, so a window no trace has joined yet closes before a trace"
                f" ending in its last {format_duration(round((self.trace_idle - self.grace) * 1e9))} can join it"
                " (that trace is counted late, and a rule about silence can fire under traffic); give the window"
                " grace at least the trace idle time, or leave it out (twice the trace idle time)"
            )
        return out

    def check(self) -> None:
        self._check_addresses()
        if self.trace_idle <= 0:
            raise ConfigError("--trace-idle: must be more than 0")
        if self.max_trace_age < self.trace_idle:
            age, idle, twice = (
                format_duration(round(x * 1e9)) for x in (self.max_trace_age, self.trace_idle, 2 * self.trace_idle)
            )
            raise ConfigError(
                f"--max-trace-age ({age}; {DEFAULT_MAX_TRACE_AGE} unless given) must be at least --trace-idle"
                f" ({idle}); give --max-trace-age too, e.g. --max-trace-age {twice}"
            )
        if self.shutdown_timeout <= 0:
            raise ConfigError("--shutdown-timeout: must be more than 0")
        limits = (
            "max_spans_per_trace",
            "max_buffered_spans",
            "max_buffer_bytes",
            "max_pending_spans",
            "max_window_spans",
            "sink_queue",
            "max_http_connections",
            "max_inflight_bytes",
        )
        for name in limits:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: must be at least 1")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key: give both or neither")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not path.is_file():
                raise ConfigError(f"--tls-cert/--tls-key: {path}: no such file")
        if self.tls_cert is not None and self.tls_key is not None:
            check_tls(self.tls_cert, self.tls_key)
        if self.db is not None and self.jsonl is not None and self.jsonl != "-":
            check_apart(self.db, Path(self.jsonl))
        if self.otlp_logs_protocol not in ("http", "grpc"):
            raise ConfigError("--otlp-logs-protocol: give http or grpc")
        if self.webhook is not None:
            check_url(self.webhook, "--webhook", "https://alerts.example.com/fluo")
        if self.otlp_logs is not None:
            port = 4317 if self.otlp_logs_protocol == "grpc" else 4318
            check_url(self.otlp_logs, "--otlp-logs", f"http://collector:{port}")
            if self.otlp_logs_protocol == "grpc" and "@" in urlsplit(self.otlp_logs).netloc:
                raise ConfigError(
                    f"--otlp-logs {redacted(self.otlp_logs)}: user info (user:password@) is not sent over gRPC; give"
                    " the credentials as gRPC metadata instead: OTEL_EXPORTER_OTLP_LOGS_HEADERS="
                    "'authorization=Basic%20BASE64' (or use --otlp-logs-protocol http, which sends them as Basic auth)"
                )


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """The settings of a `--config` file, keys as flag names with underscores (`trace_idle`)."""

    path: str
    settings: dict[str, Any]
    """Each setting's value as YAML reads it (`off` is false, `0123` the number 83, an empty value None)."""
    written: dict[str, str | list[str]]
    """Each setting's value as written: a scalar's text, or the texts of a list of scalars (no other shape)."""
    lines: dict[str, int]
    """The line (from 1) of each setting's key."""

    def where(self, key: str) -> str:
        """`path:line` of setting `key`, for a message (the path alone when the key came from a `<<` merge)."""
        line = self.lines.get(key)
        return f"{self.path}:{line}" if line else self.path


def load_config_file(path: str) -> ConfigFile:
    """The settings of a YAML file, keys as flag names (`trace-idle` or `trace_idle`); one given twice, under one
    spelling or both, is a ConfigError naming both lines (PyYAML keeps the last without a word)."""
    import yaml

    if os.path.isdir(path):
        raise ConfigError(f"--config: cannot read {path}: it is a folder, not a file")
    try:
        raw = read_file(path, MAX_CONFIG_BYTES, pipes=True)  # `--config <(envsubst < fluo.yaml)`
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"--config: {path}: larger than {MAX_CONFIG_BYTES >> 20} MiB")
    text, not_utf8 = decode_source(raw, path)
    if not_utf8 is not None:
        raise ConfigError(f"--config: {path}: {not_utf8.message}")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        nodes = _setting_nodes(root, path) if isinstance(root, yaml.MappingNode) else {}
        data = loader.construct_document(root) if root is not None else None  # after: it flattens `<<` in place
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise ConfigError(f"--config: {where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    finally:
        loader.dispose()
    if data is None:
        return ConfigFile(path, {}, {}, {})
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path}: expected a mapping of settings, e.g. `trace-idle: 5s`")
    settings: dict[str, Any] = {}
    spelt: dict[str, str] = {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        if key in settings:  # one spelling from a `<<` merge, the other in the file
            raise ConfigError(f"--config: {path}: `{spelt[key]}` and `{k}` are one setting; keep one of them")
        settings[key], spelt[key] = v, str(k)
    written = {key: value for key, (_, _, value) in nodes.items() if value is not None}
    return ConfigFile(path, settings, written, {key: line for key, (line, _, _) in nodes.items()})


def _setting_nodes(root: Any, path: str) -> dict[str, tuple[int, str, str | list[str] | None]]:
    """Each key of the file's mapping (underscored): its line, its spelling and its value as written."""
    import yaml

    nodes: dict[str, tuple[int, str, str | list[str] | None]] = {}
    for key_node, value_node in root.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key, line = key_node.value.replace("-", "_"), key_node.start_mark.line + 1
        if key in nodes:
            first, spelling, _ = nodes[key]
            if spelling == key_node.value:
                raise ConfigError(f"--config: {path}:{line}: `{spelling}` is given twice (line {first} too); keep one")
            raise ConfigError(
                f"--config: {path}:{line}: `{spelling}` (line {first}) and `{key_node.value}` are one setting;"
                " keep one of them"
            )
        value: str | list[str] | None = None
        if isinstance(value_node, yaml.ScalarNode):
            value = value_node.value
        elif isinstance(value_node, yaml.SequenceNode) and all(
            isinstance(n, yaml.ScalarNode) for n in value_node.value
        ):
            value = [n.value for n in value_node.value]
        nodes[key] = (line, key_node.value, value)
    return nodes


def env_token() -> str | None:
    return os.environ.get("FLUO_AUTH_TOKEN") or None
