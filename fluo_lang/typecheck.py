"""The typechecker: resolves every name against the builtin registry and infers types.

It never stops at the first problem: each rule is checked to the end, and an
expression that failed gets the type `<error>`, which quietly matches anything
so one mistake is reported once. The result records, for every expression node,
its type (`types`) and what its name resolved to (`refs`); the compiler lowers
from those tables, and the language server reads them for hover and completion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from . import ast
from . import builtins as b
from . import types as t
from .diagnostics import Diagnostic, Related, article, edit_distance, error, nearest, one_based, plural, warning
from .regex import FILE_INSTRUCTIONS, REFUSED_INSTRUCTIONS, RegexBudget, RegexBudgetExhausted, RegexError
from .values import string_literal

SEVERITIES = ast.SEVERITIES
META_KEYS = ast.META_KEYS


# What a name, field or call resolved to. `base` is the expression that yields the
# span or map being read; None means the span in scope (`it`).
@dataclass(frozen=True, slots=True)
class RootRef:
    name: str


@dataclass(frozen=True, slots=True)
class ItRef:
    pass


@dataclass(frozen=True, slots=True)
class MemberRef:
    member: b.Member
    base: ast.Expr | None


@dataclass(frozen=True, slots=True)
class AttrRef:
    """An attribute read: of a span (`source='span'`) or from a map (`'map'`)."""

    key: str
    source: str
    base: ast.Expr | None


@dataclass(frozen=True, slots=True)
class EnumRef:
    value: str


Ref = RootRef | ItRef | MemberRef | AttrRef | EnumRef


@dataclass
class CheckedRule:
    rule: ast.Rule
    path: str
    severity: str = "warning"
    description: str = ""
    name: str = ""
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    window_ns: int | None = None
    types: dict[int, t.Type] = field(default_factory=dict)
    refs: dict[int, Ref] = field(default_factory=dict)
    coerced: set[int] = field(default_factory=set)  # spans/span nodes read as booleans
    # the enum each bare name or string was read beside (`status == error`, `[kind] == [server]`), whatever it
    # names: the values completion offers there
    enums: dict[int, t.Type] = field(default_factory=dict)
    ok: bool = True

    @property
    def id(self) -> str:
        return self.rule.id

    def clause(self, kind: str) -> ast.Clause | None:
        return next((c for c in self.rule.clauses if c.kind == kind), None)

    @property
    def mode(self) -> str:
        for kind in ("expect", "detect", "when"):
            if self.clause(kind) is not None:
                return kind
        return "expect"


@dataclass(frozen=True, slots=True)
class _Scope:
    in_pred: bool
    windowed: bool

    def inner(self) -> _Scope:
        return _Scope(True, self.windowed)


_BOOLISH = (t.BOOL, t.ANY, t.ERROR)

# The enum a bare name or string is read as a value of (`status == error`), or for a list literal the enums of
# its items position by position (`[status, kind] == [error, client]` gives `(STATUS, KIND)`).
_Enum = t.Type | tuple["_Enum", ...] | None


class _Checker:
    def __init__(self, rule: ast.Rule, path: str, regexes: RegexBudget | None = None) -> None:
        self.out = CheckedRule(rule, path, name=rule.id)
        self.regexes = regexes if regexes is not None else RegexBudget()  # shared by the rules of a file
        self.regexes_unchecked = False  # FLUO405 reported
        self.diags: list[Diagnostic] = []
        self.path = path
        self.pending_typos: dict[int, Diagnostic] = {}
        self.dashed: set[int] = set()  # `-` nodes inside a dashed key (`x-request-id`) an outer `-` reported
        self.dashed_keys: dict[int, tuple[Diagnostic, str]] = {}  # a dashed key's FLUO207 and how to write it
        self.refused_meta = False  # a metadata value the parser refused (kind `missing`)
        # what is read right after a name (`traces` in `traces.count()`): the member, and the number of
        # arguments of a call (None for a field), so a fix for the name is one the member exists on
        self.read_after: dict[int, tuple[str, int | None]] = {}
        self.typo_types: dict[int, t.Type] = {}  # FLUO205's pending guesses: the intrinsic's type
        # FLUO202's `call it: m()` and FLUO201's `did you mean m`: the diagnostic, what the call it names gives,
        # and its message where the place refuses what the call gives (the fix is dropped)
        self.call_fixes: dict[int, tuple[Diagnostic, t.Type, str]] = {}
        # an arithmetic node's operands that carry a guess, and what the node gives if the operand is of a type:
        # `srvice + 'x' > 3` drops `service` (a string, so the sum is one) where the comparison refuses a string
        self.carried: dict[int, list[tuple[ast.Expr, Callable[[t.Type], t.Type | None]]]] = {}
        # what a node's place takes (a boolean in a clause, `spans` as `before`'s argument): a fix must give it
        self.wanted: dict[int, Callable[[t.Type], bool]] = {}
        self.unitless_items: set[int] = set()  # numbers among durations (`[1s, 500]`) a list already refused
        self.dashed_until = -1  # `true -- note`: up to here, after a `--`, an unknown name is a comment's word

    def err(
        self,
        code: str,
        msg: str,
        span: ast.Span,
        suggestion: str | None = None,
        guess: str | None = None,
        related: tuple[Related, ...] = (),
    ) -> None:
        self.diags.append(error(code, msg, span, path=self.path, suggestion=suggestion, guess=guess, related=related))

    def operands(self, e: ast.Binary) -> tuple[Related, ...]:
        """The operands of a binary operator's type error, which is said at the operator, each with its type."""
        types = (self.out.types.get(id(e.left), t.ERROR), self.out.types.get(id(e.right), t.ERROR))
        return tuple(
            Related(
                "this has no declared type (any)" if ty == t.ANY else f"this is {article(ty)}", side.span, self.path
            )
            for side, ty in zip((e.left, e.right), types, strict=True)
        )

    def warn(self, code: str, msg: str, span: ast.Span, suggestion: str | None = None) -> None:
        self.diags.append(warning(code, msg, span, path=self.path, suggestion=suggestion))

    # -- rule structure ------------------------------------------------------

    def rule(self) -> CheckedRule:
        rule = self.out.rule
        self.metadata(rule)
        self.clauses(rule)
        scope = _Scope(False, bool(rule.windows))
        for clause in rule.clauses:
            self.wanted[id(clause.expr)] = _boolish
            ty = self.check(clause.expr, scope)
            self.require_bool(clause.expr, ty, f"the `{clause.kind}` expression")
        self.diags.extend(self.pending_typos.values())
        # A node typed <error> comes from a reported error or from the parser's recovery.
        self.out.ok = (
            not any(d.is_error for d in self.diags) and t.ERROR not in self.out.types.values() and not self.refused_meta
        )
        return self.out

    def metadata(self, rule: ast.Rule) -> None:
        seen: dict[str, ast.Meta] = {}
        for m in rule.meta:
            if not m.key:  # the recovery inserted it: the syntax error says what is missing
                continue
            if m.key in seen:
                self.diags.append(
                    error(
                        "FLUO211",
                        f"duplicate metadata key `{m.key}`",
                        m.key_span,
                        path=self.path,
                        related=(Related("first given here", seen[m.key].key_span, self.path),),
                    )
                )
                continue
            seen[m.key] = m
            if m.key not in META_KEYS:
                # the nearest key is named; it is the fix only if it takes this value
                guess = _nearest(m.key, list(META_KEYS))
                hint = f"; did you mean `{guess}`?" if guess else f" (known: {', '.join(META_KEYS)})"
                fix = guess if guess and ast.meta_fits(guess, m.value) else None
                named = guess if guess and fix is None else None  # `tag: payments`: `tags` takes a list (a guess)
                self.err("FLUO210", f"unknown metadata key `{m.key}`{hint}", m.key_span, fix, named)
                continue
            self.meta_value(m)

    def meta_value(self, m: ast.Meta) -> None:
        v = m.value
        if v.kind == "missing":  # the parser reported it (FLUO400, or a syntax error where the value belongs)
            self.refused_meta = True
            return
        want = META_KEYS[m.key]
        if m.key == "severity":
            if v.kind in ("ident", "string") and v.value in SEVERITIES:
                self.out.severity = str(v.value)
                return
            guess = None
            if v.kind in ("ident", "string"):
                guess = b.foreign_name("severity", str(v.value)) or _nearest(str(v.value), SEVERITIES)
            hint = f"; did you mean `{guess}`?" if guess else ""
            self.err("FLUO212", f"severity must be {want}, found `{_meta_text(v)}`{hint}", v.span, guess)
        elif m.key == "tags":
            items = v.value if v.kind == "list" and isinstance(v.value, list) else None
            if items is None:
                self.err("FLUO212", f"tags must be {want}, found `{_meta_text(v)}`", v.span)
                return
            bad = [i for i in items if i.kind not in ("ident", "string")]
            for i in bad:  # each at itself: `tags: [auth, 5]` is wrong at the `5`
                if i.kind != "missing":  # the parser reported it
                    self.err("FLUO212", f"tags must be {want}, found `{_meta_text(i)}` in the list", i.span)
            if bad:
                return
            self.out.tags = tuple(str(i.value) for i in items)
        elif m.key == "enabled":
            if v.kind != "bool":
                guess = _nearest(str(v.value), ("true", "false")) if v.kind in ("ident", "string") else None
                hint = f"; did you mean `{guess}`?" if guess else ""
                self.err("FLUO212", f"enabled must be true or false, found `{_meta_text(v)}`{hint}", v.span, guess)
                return
            self.out.enabled = bool(v.value)
        else:
            if v.kind != "string":
                self.err("FLUO212", f"{m.key} must be {want}, found `{_meta_text(v)}`", v.span)
                return
            if m.key == "description":
                self.out.description = str(v.value)
            elif m.key == "name":
                self.out.name = str(v.value)
            else:
                self.out.extra[m.key] = v.value

    def clauses(self, rule: ast.Rule) -> None:
        seen: dict[str, ast.Clause] = {}
        for c in rule.clauses:
            if c.kind in seen:
                self.diags.append(
                    error(
                        "FLUO216",
                        f"`{c.kind}` appears twice in rule `{rule.id}`",
                        c.span,
                        path=self.path,
                        related=(Related("first here", seen[c.kind].span, self.path),),
                    )
                )
            seen.setdefault(c.kind, c)
        heads = [k for k in ("expect", "detect", "when") if k in seen]
        if len(heads) > 1:
            self.err(
                "FLUO214",
                f"rule `{rule.id}` has {' and '.join(f'`{h}`' for h in heads)}; give exactly one",
                seen[heads[1]].span,
            )
        if not heads and not ("always" in seen or "never" in seen):
            self.err(
                "FLUO214",
                f"rule `{rule.id}` checks nothing: add `expect E`, `detect E` or `when {{...}} always {{...}}`",
                rule.id_span,
            )
        if "when" in seen and not ("always" in seen or "never" in seen):
            self.err(
                "FLUO215",
                "`when` needs an `always { ... }` or `never { ... }` clause",
                seen["when"].span,
            )
        for k in ("always", "never"):
            if k in seen and "when" not in seen:
                self.err("FLUO215", f"`{k}` needs a `when {{ ... }}` clause before it", seen[k].span)
        if len(rule.windows) > 1:
            self.err("FLUO216", "`window` appears twice", rule.windows[1].span)
        if rule.windows:
            w = rule.windows[0]
            if w.length_ns <= 0:
                self.err(
                    "FLUO217",
                    "the window length must be a positive duration, e.g. `window 1m`",
                    w.span,
                )
            else:
                self.out.window_ns = w.length_ns

    # -- expressions ---------------------------------------------------------

    def record(self, e: ast.Expr, ty: t.Type, ref: Ref | None = None) -> t.Type:
        self.out.types[id(e)] = ty
        if ref is not None:
            self.out.refs[id(e)] = ref
        return ty

    def check(self, e: ast.Expr, scope: _Scope, enum: _Enum = None) -> t.Type:
        if isinstance(e, ast.ListLit):
            return self.list_lit(e, scope, enum)
        if isinstance(enum, tuple):  # a list's items beside a value that is no list: no enum is meant
            enum = None
        if enum in t.ENUMS and isinstance(e, ast.Name | ast.Literal):
            self.out.enums[id(e)] = enum
        if enum == t.ERROR and not isinstance(e, ast.ListLit):  # beside an error (`min(status) == ok`), a value
            # of an enum is no error of its own (nor one in a list: `in [ok, error]`)
            if isinstance(e, ast.Name) and not scope.in_pred and any(e.ident in v for v in t.ENUMS.values()):
                return self.record(e, t.ERROR)
            enum = None
        if isinstance(e, ast.Literal):
            if enum is not None and e.kind == "string":
                return self.enum_value(e, str(e.value), enum)
            return self.record(e, _LITERAL_TYPES[e.kind])
        if isinstance(e, ast.Name):
            return self.name(e, scope, enum)
        if isinstance(e, ast.Field):
            return self.field(e, scope)
        if isinstance(e, ast.Call):
            return self.call(e, scope)
        if isinstance(e, ast.Index):
            return self.index(e, scope)
        if isinstance(e, ast.Binary):
            return self.binary(e, scope)
        if isinstance(e, ast.Logic):
            self.wanted.update((id(operand), _boolish) for operand in e.operands)
            for operand in e.operands:
                self.require_bool(operand, self.check(operand, scope), f"the operands of `{e.op}`")
            return self.record(e, t.BOOL)
        if isinstance(e, ast.Unary):
            return self.unary(e, scope)
        return self.record(e, t.ERROR)

    def enum_value(self, e: ast.Expr, value: str, enum: t.Type) -> t.Type:
        allowed = t.ENUMS[enum]
        if value not in allowed:
            guess = b.foreign_name(enum.name, value) or _nearest(value, allowed)
            hint = f"; did you mean `{guess}`?" if guess else ""
            self.err(
                "FLUO304",
                f"`{value}` is not {article(enum)} (one of {', '.join(allowed)}){hint}",
                e.span,
                guess,
            )
            return self.record(e, t.ERROR)
        return self.record(e, enum, EnumRef(value))

    def name(self, e: ast.Name, scope: _Scope, enum: t.Type | None) -> t.Type:
        ident = e.ident
        if ident == "trace":
            if scope.windowed:
                self.err(
                    "FLUO220",
                    "a rule with `window` checks `window`, not `trace` (use `window.spans`)",
                    e.span,
                    "window" if _fits(t.WINDOW, self.read_after.get(id(e))) else None,
                )
                return self.record(e, t.ERROR)
            return self.record(e, t.TRACE, RootRef("trace"))
        if ident == "window":
            if not scope.windowed and scope.in_pred and id(e) not in self.read_after:
                # `where(window == 'x')`: no window in this rule, and a bare one is no value: an attribute meant
                fix = 'attributes["window"]'
                message = f"`window` is a windowed rule's root, and this rule has no `window` clause: write `{fix}`"
                self.err("FLUO221", message, e.span, fix)
                return self.record(e, t.ERROR)
            if not scope.windowed:
                self.err(
                    "FLUO221",
                    "`window` is only defined in a rule with a `window D` clause (e.g. `window 1m`)",
                    e.span,
                )
                return self.record(e, t.ERROR)
            if scope.in_pred and id(e) not in self.read_after:
                # `where(window == 'x')` in a windowed rule: the window itself is no value, an attribute is meant
                fix = 'attributes["window"]'
                message = "`window` alone is this rule's window, which is no value (a span attribute meant?): "
                message += f"write `{fix}`"
                self.err("FLUO221", message, e.span, fix)
                return self.record(e, t.ERROR)
            return self.record(e, t.WINDOW, RootRef("window"))
        if enum is not None and scope.in_pred and ident not in b.SPAN_FIELD_NAMES and ident != "it":
            return self.enum_value(e, ident, enum)
        if enum is not None and not scope.in_pred and ident not in b.SPAN_FIELD_NAMES:
            return self.enum_value(e, ident, enum)
        if ident == "it":
            if not scope.in_pred:
                self.err(
                    "FLUO204",
                    "`it` is only defined inside a predicate, e.g. `.where(it.duration > 1s)`",
                    e.span,
                )
                return self.record(e, t.ERROR)
            return self.record(e, t.SPAN, ItRef())
        member = b.lookup(t.SPAN, ident)
        if member is not None:
            if not scope.in_pred:
                example = (
                    f"`window.spans.where({ident} ...)`"
                    if scope.windowed
                    else f"`trace.spans.where({ident} ...)`, or `trace.root.{ident}`"
                )
                self.err("FLUO204", f"`{ident}` is a span field; use it inside a predicate, e.g. {example}", e.span)
                return self.record(e, t.ERROR)
            return self.record(e, member.result_type(()), MemberRef(member, None))
        if not scope.in_pred:
            guess = _root_fix(ident, scope.windowed, self.read_after.get(id(e)))
            hint = f"; did you mean `{guess}`?" if guess else "; a rule starts from `trace` (or `window`)"
            if ident.lower() in ("true", "false") and id(e) not in self.read_after:  # `True.spans`: no boolean
                guess = ident.lower()
                hint = f"; did you mean `{guess}`?"
            elif ident.lower() == "traces" and not scope.windowed:
                hint = "; a window's traces are `window.traces`, in a rule with `window D` (e.g. `window 1m`)"
            elif ident.lower() in _NULLS:
                hint = "; FLUO has no null: to test that `x` is present write `x not in []`"
            elif e.span.end <= self.dashed_until:
                hint = "; after `--`: FLUO's comments start with `//`"
            self.err("FLUO200", f"unknown name `{ident}`{hint}", e.span, guess)
            return self.record(e, t.ERROR)
        misread = _misread_name(ident)
        if misread is not None:
            self.pending_typos[id(e)] = warning("FLUO207", misread[0], e.span, path=self.path, suggestion=misread[1])
            if misread[1] in ("true", "false"):
                self.typo_types[id(e)] = t.BOOL
                if id(e) in self.read_after:  # `True.x`: no boolean has fields
                    self.unfit_typo(e, lambda ty: False)
            return self.record(e, t.ANY, AttrRef(ident, "span", None))
        typo = b.foreign_name("span", ident) or _nearest(ident, b.SPAN_FIELD_NAMES)
        if typo is not None and typo != ident:
            self.typo_types[id(e)] = _span_field_type(typo)
            self.pending_typos[id(e)] = warning(
                "FLUO205",
                f"`{ident}` reads as a span attribute; did you mean the intrinsic `{typo}`?",
                e.span,
                path=self.path,
                suggestion=typo,
            )
        return self.record(e, t.ANY, AttrRef(ident, "span", None))

    def field(self, e: ast.Field, scope: _Scope) -> t.Type:
        self.read_after[id(e.target)] = (e.name, None)
        target_ty = self.check(e.target, scope)
        if target_ty == t.ERROR:
            return self.record(e, t.ERROR)
        inner = self.out.refs.get(id(e.target))
        if isinstance(inner, AttrRef) and target_ty == t.ANY:
            self.pending_typos.pop(id(e.target), None)
            ref = AttrRef(f"{inner.key}.{e.name}", inner.source, inner.base)
            if ref.source == "span" and ref.base is None and ref.key.startswith("span."):
                rest = ref.key.removeprefix("span.")
                self.pending_typos[id(e)] = warning(
                    "FLUO207",
                    f"`{ref.key}` reads as an attribute with that whole key: `span.` is TraceQL's scope, which "
                    f"FLUO does not write; write `{rest}` (or `attributes[{string_literal(ref.key)}]` for a key that "
                    "does start with `span.`)",
                    e.span,
                    path=self.path,
                    suggestion=rest,
                )
            return self.record(e, t.ANY, ref)
        member = b.lookup(target_ty, e.name)
        if member is not None and member.kind == "field":
            return self.record(e, member.result_type(()), MemberRef(member, e.target))
        if member is not None:
            called = _call_result(target_ty, e.name, [])
            if called is not None and self.fits_here(e, called):
                self.err("FLUO202", f"`{e.name}` is a method; call it: `{e.name}()`", e.name_span, f"{e.name}()")
                unfit = f"`{e.name}` is a method; call it: {member.signature}"
                self.call_fixes[id(e)] = (self.diags[-1], called, unfit)
            else:  # `trace.has`: a call with no arguments would be another error
                self.err("FLUO202", f"`{e.name}` is a method; call it: {member.signature}", e.name_span)
            return self.record(e, t.ERROR)
        if target_ty == t.SPAN:
            typo = b.foreign_name("span", e.name) or _nearest(e.name, b.SPAN_FIELD_NAMES)
            if typo is not None:
                self.typo_types[id(e)] = _span_field_type(typo)
                self.pending_typos[id(e)] = warning(
                    "FLUO205",
                    f"`{e.name}` reads as a span attribute; did you mean the intrinsic `{typo}`?",
                    e.name_span,
                    path=self.path,
                    suggestion=typo,
                )
            return self.record(e, t.ANY, AttrRef(e.name, "span", e.target))
        if target_ty in (t.MAP, t.ANY):
            return self.record(e, t.ANY, AttrRef(e.name, "map", e.target))
        members = b.members_of(target_ty)
        names = list(members)
        # a guess must give what is read after it: `trace.it.where(...)` is not `trace.id`, a string
        fields = [n for n, m in members.items() if m.kind == "field" and self.fits_here(e, m.result_type(()))]
        methods = [
            n for n in names if members[n].kind == "method" and self.fits_here(e, _call_result(target_ty, n, []))
        ]
        fix = _nearest(e.name, fields) or (f"{m}()" if (m := _nearest(e.name, methods)) else None)
        # a near name that does not fit is still named (the name may be right and the rest the mistake): a `guess`,
        # no fix
        guess = fix or _nearest(e.name, names)
        hint = f"; did you mean `{guess}`?" if guess else (f" (it has: {', '.join(names)})" if names else "")
        extra = ""
        bare = isinstance(e.target, ast.Name) and e.target.ident == "service"
        if e.name == "name" and (bare or (isinstance(e.target, ast.Field) and e.target.name == "service")):
            # OpenTelemetry's `service.name`: FLUO's `service` intrinsic is that resource attribute
            message = "`service` already is the resource's `service.name`: drop the `.name`"
            self.err("FLUO202", message, e.span if bare else e.name_span, "service" if bare else None)
            return self.record(e, t.ERROR)
        if target_ty == t.STATUS and e.name == "code":
            # OpenTelemetry's `status.code`: FLUO's `status` is that code, compared with `ok`, `error` or `unset`
            bare = isinstance(e.target, ast.Name) and e.target.ident == "status"
            message = "`status` already is the status code: drop the `.code` and compare it, like `status == error`"
            self.err("FLUO202", message, e.span if bare else e.name_span, "status" if bare else None)
            return self.record(e, t.ERROR)
        if target_ty == t.STRING and e.name in ("name",):
            extra = ' (for an attribute key, write attributes["..."])'
        named = None if fix or not guess else guess + ("()" if members[guess].kind == "method" else "")
        self.err("FLUO202", f"{target_ty} has no field `{e.name}`{hint}{extra}", e.name_span, fix, named)
        return self.record(e, t.ERROR)

    def call(self, e: ast.Call, scope: _Scope) -> t.Type:
        self.read_after[id(e.target)] = (e.method, len(e.args))
        target_ty = self.check(e.target, scope)
        member = b.lookup(target_ty, e.method) if target_ty != t.ERROR else None
        if member is None or member.kind != "method":
            given = [self.check(arg, scope.inner()) for arg in e.args]
            if target_ty != t.ERROR:
                self.unknown_method(e, target_ty, member, given)
            return self.record(e, t.ERROR)
        params = member.params
        required = sum(1 for p in params if not p.optional)
        if not required <= len(e.args) <= len(params):
            m = e.method_span  # from the method name to the closing parenthesis, not the whole chain
            span = ast.Span(m.start, e.span.end, m.line, m.col, e.span.end_line, e.span.end_col)
            self.err("FLUO203", _arity_message(member, len(e.args)), span)
        arg_types: list[t.Type] = []
        unfit = False  # an argument of the wrong type: the result is an error, not `any` (no cascade beside it)
        for arg, param in zip(e.args, params, strict=False):
            if param.kind == "pred":
                self.wanted[id(arg)] = _boolish
            elif param.types:
                self.wanted[id(arg)] = _one_of(param.types)
            ty = self.check(arg, scope if param.kind == "value" else scope.inner())
            arg_types.append(ty)
            if param.kind == "pred":
                self.require_bool(arg, ty, f"the predicate of `{member.name}`")
            elif param.types and not t.lenient(ty) and ty not in param.types:
                want = " or ".join(str(x) for x in param.types if x != t.ANY)
                unfit = True
                why = _instants_hint(member.name, arg, e.target) if ty == t.TIMESTAMP else ""
                self.err(
                    "FLUO305",
                    f"`{member.name}` takes {want} for `{param.name}`, found {ty}{why}",
                    arg.span,
                )
        if len(e.args) > len(params):
            # FLUO203 says to drop them: their own errors (`where(a, b)` checks `b` outside a predicate) are noise
            inner = not params or params[-1].kind != "value"
            self.quietly(lambda: [self.check(arg, scope.inner() if inner else scope) for arg in e.args[len(params) :]])
        return self.record(e, t.ERROR if unfit else member.result_type(arg_types), MemberRef(member, e.target))

    def quietly(self, check: Callable[[], object]) -> None:
        """Run `check` for the types it records, dropping the diagnostics it reports."""
        reported, pending = len(self.diags), set(self.pending_typos)
        check()
        del self.diags[reported:]
        for key in set(self.pending_typos) - pending:
            del self.pending_typos[key]

    def unknown_method(self, e: ast.Call, target_ty: t.Type, member: b.Member | None, arg_types: list[t.Type]) -> None:
        if member is not None:  # a field called like a method
            msg = f"`{e.method}` is a field of {target_ty}; drop the parentheses"
            if e.args:
                self.err("FLUO206", msg, e.span)
            else:  # from the name to the closing parenthesis: `spans()` becomes `spans`
                m = e.method_span
                span = ast.Span(m.start, e.span.end, m.line, m.col, e.span.end_line, e.span.end_col)
                self.err("FLUO206", msg, span, e.method)
            return
        members = b.members_of(target_ty)
        methods = [m.name for m in members.values() if m.kind == "method"]
        # what follows the call (a member to read), or a boolean where one goes: what a fix must give
        fits = [n for n in methods if self.fits_here(e, _call_result(target_ty, n, arg_types))]
        foreign = _foreign_method(target_ty, e.method, arg_types)
        fix = (foreign[0] if foreign and self.fits_here(e, foreign[1]) else None) or _nearest(e.method, fits)
        # a near method that does not fit is still named (`trace.spans.cont()` in a clause: `count`, whose int
        # the clause refuses: the name may be right and the comparison missing): a `guess`, no fix
        guess = fix or (foreign[0] if foreign else None) or _nearest(e.method, methods)
        if guess:
            hint = f"; did you mean `{guess}`?"
        elif methods:
            hint = f" (it has: {', '.join(methods)})"
        else:
            hint = f" ({target_ty} has no methods)"
        named = guess if guess and not fix else None
        self.err("FLUO201", f"unknown method `{e.method}` on {target_ty}{hint}", e.method_span, fix, named)
        called = foreign[1] if foreign and fix == foreign[0] else _call_result(target_ty, fix or "", arg_types)
        if fix and called is not None:  # named still where what it gives is refused (`length() == 'a'`), no fix
            self.call_fixes[id(e)] = (self.diags[-1], called, self.diags[-1].message)

    def index(self, e: ast.Index, scope: _Scope) -> t.Type:
        target_ty = self.check(e.target, scope)
        key_ty = self.check(e.key, scope)
        if target_ty == t.ANY and self.resource_attributes(e):
            return self.record(e, t.ANY)
        if target_ty in (t.MAP, t.ANY):
            # an attribute may hold a map (string keys) or a list (int indexes): which, only the trace says
            allowed = (t.STRING, t.ANY, t.ERROR) if target_ty == t.MAP else (t.STRING, t.INT, t.ANY, t.ERROR)
            if key_ty not in allowed:
                what = "attribute keys are strings" if target_ty == t.MAP else "keys are strings, indexes ints"
                self.err("FLUO305", f"{what}, found {key_ty}", e.key.span)
            return self.record(e, t.ANY)
        if target_ty.is_list:
            if key_ty not in (t.INT, t.ANY, t.ERROR):
                self.err("FLUO305", f"list indexes are ints, found {key_ty}", e.key.span)
            if isinstance(e.target, ast.ListLit) and (mixed := self.mixed_items(e.target)):
                self.err(
                    "FLUO300",
                    f"an indexed list holds items of one type, found {mixed}; a list of mixed items is for "
                    f"`in`, `not in` and `contains` with an attribute (`x in [500, '500']`)",
                    e.target.span,
                )
                return self.record(e, t.ERROR)
            return self.record(e, target_ty.elem or t.ANY)
        if target_ty != t.ERROR:
            self.err("FLUO206", f"cannot index {article(target_ty)} with [...]", e.span)
        return self.record(e, t.ERROR)

    def mixed_items(self, e: ast.ListLit) -> str:
        """The item types of a list literal that have no type in common (`duration and string` for
        `[1s, 'a']`), or '' when they have one: indexed, such a list would give a value of no known type."""
        known = list(dict.fromkeys(ty for i in e.items if not t.lenient(ty := self.out.types.get(id(i), t.ANY))))
        if len(known) < 2 or _unify(known) != t.ANY:
            return ""
        return ", ".join(map(str, known[:-1])) + f" and {known[-1]}"

    def resource_attributes(self, e: ast.Index) -> bool:
        """OTTL's `resource.attributes["k"]`: FLUO reads a resource attribute named `attributes`, then its key."""
        ref = self.out.refs.get(id(e.target))
        if not (isinstance(ref, AttrRef) and ref.source == "map" and ref.key == "attributes" and ref.base is not None):
            return False
        base = self.out.refs.get(id(ref.base))
        if not (isinstance(base, MemberRef) and base.member.name == "resource"):
            return False
        key = e.key.value if isinstance(e.key, ast.Literal) and e.key.kind == "string" else None
        fix = f"resource[{string_literal(str(key))}]" if key is not None else 'resource["..."]'
        service = " (or the intrinsic `service`)" if key == "service.name" else ""
        self.warn(
            "FLUO207",
            f"`resource.attributes[...]` reads a resource attribute named `attributes`: FLUO indexes the "
            f"resource itself, write `{fix}`{service}",
            e.span,
            fix if key is not None else None,
        )
        return True

    def list_lit(self, e: ast.ListLit, scope: _Scope, enum: _Enum, each: bool = False) -> t.Type:
        """A list's type, its items read beside `enum`: a tuple of enums position by position (the items of a list
        it is compared with), unless `each` (the items of a list a value is looked for in: `[status] in [[ok]]`);
        one enum, each item beside it (`status in [ok]`)."""
        n = len(e.items)
        if not isinstance(enum, tuple) or each:
            enums: list[_Enum] = [enum] * n
        elif len(enum) == n:
            enums = list(enum)
        else:  # lists of two lengths: an enum every item of the other shares, if one (`[status, status] != [ok]`)
            shared = set(enum)  # an item of no enum among them (`[nosuch, kind] != [error]`): names are attributes
            enums = [shared.pop() if len(shared) == 1 else None] * n
        return self.list_type(e, [self.check(i, scope, x) for i, x in zip(e.items, enums, strict=True)])

    def list_type(self, e: ast.ListLit, types: list[t.Type]) -> t.Type:
        """A list literal's type from its items' (`types`); FLUO300 for a number among durations (`[1s, 500]`),
        which would read as nanoseconds: the list is then taken as the durations it was meant to hold."""
        if t.DURATION in types and any(t.is_numeric(ty) for ty in types):
            says = "a number among durations would be read as nanoseconds"
            for item, ty in zip(e.items, types, strict=True):
                if t.is_numeric(ty):
                    self.unitless_items.add(id(item))
                if t.is_numeric(ty) and isinstance(item, ast.Literal):
                    self.unitless(item, says)
                elif t.is_numeric(ty):
                    self.err("FLUO300", f"{says}; give it a unit: multiply it by one, e.g. `* 1ms`", item.span)
            types = [t.DURATION if t.is_numeric(ty) else ty for ty in types]
        return self.record(e, t.list_of(_unify(types)))

    def unary(self, e: ast.Unary, scope: _Scope) -> t.Type:
        if e.op == "not":
            self.wanted[id(e.operand)] = _boolish
        elif isinstance(e.operand, ast.Unary) and e.operand.op == "-" and e.operand.span.start == e.span.start + 1:
            self.dashed_until = max(self.dashed_until, e.span.end)  # `--note`
        ty = self.check(e.operand, scope)
        if e.op == "not":
            self.require_bool(e.operand, ty, "the operand of `not`")
            return self.record(e, t.BOOL)
        self.carried[id(e)] = [
            (e.operand, lambda ty: ty if ty in (t.INT, t.FLOAT, t.DURATION) or t.lenient(ty) else None)
        ]
        self.unfit_typo(e, lambda ty: True)  # `-srvice`: no string is negated
        if ty in (t.INT, t.FLOAT, t.DURATION) or t.lenient(ty):
            return self.record(e, ty)
        self.err("FLUO302", f"cannot negate {article(ty)}", e.span)
        return self.record(e, t.ERROR)

    def binary(self, e: ast.Binary, scope: _Scope) -> t.Type:
        op = e.op
        if op in ast.COMPARISONS:
            return self.compare(e, scope)
        if op in ("in", "not in"):
            lt = self.check(e.left, scope)
            if isinstance(e.right, ast.ListLit):
                rt = self.list_lit(e.right, scope, self.enum_shape(e.left), each=True)
            else:
                rt = self.check(e.right, scope, self.enum_shape(e.left))
            if rt.is_list:
                elem = rt.elem or t.ANY
                self.unfit_typo(e.left, lambda ty: t.lenient(elem) or t.comparable(ty, elem, ordering=False))
                if isinstance(e.right, ast.ListLit):
                    items = e.right.items
                    self.unsure_typo(e.left, lambda ty: all(_enum_value_beside(ty, i) for i in items))
                self.look_for(e, e.left, lt, e.right, rt)
            elif rt == t.ANY and self.timed(e.left):
                self.err("FLUO300", f"`{op}`: {_NO_DURATIONS}", e.op_span, related=self.operands(e))
            elif rt == t.STRING:
                # `in` is list membership, as in CEL and Rego; text in a string is `contains`
                contains = "not (STRING contains TEXT)" if op == "not in" else "STRING contains TEXT"
                hint = f"; to look for text in a string, write `{contains}`" if t.lenient(lt) or lt == t.STRING else ""
                self.err("FLUO300", f"`{op}` needs a list on its right, found string{hint}", e.right.span)
            elif not t.lenient(rt):
                self.err("FLUO300", f"`{op}` needs a list on its right, found {rt}", e.right.span)
            return self.record(e, t.BOOL)
        if op == "contains":
            if isinstance(e.left, ast.ListLit):  # `[error, ok] contains status` names enum values, as `in` does
                rt = self.check(e.right, scope)
                lt = self.list_lit(e.left, scope, self.enum_shape(e.right), each=True)
            else:
                lt = self.check(e.left, scope)
                rt = self.check(e.right, scope)
            self.unfit_typo(e.left, lambda ty: t.left_of("contains", ty))
            if lt.is_list:
                self.look_for(e, e.right, rt, e.left, lt)
            elif lt == t.ANY and self.timed(e.right):
                self.err("FLUO300", f"`contains`: {_NO_DURATIONS}", e.op_span, related=self.operands(e))
            elif t.lenient(lt) or t.left_of("contains", lt):
                if lt == t.STRING and rt not in (t.STRING, t.ANY, t.ERROR):  # an attribute may be a list
                    self.err(
                        "FLUO300",
                        f"`contains` on a string needs a string, found {rt}",
                        e.right.span,
                    )
            else:
                self.err(
                    "FLUO300",
                    f"`contains` needs a string or a list on its left, found {lt}",
                    e.left.span,
                )
            return self.record(e, t.BOOL)
        if op == "matches":
            lt = self.check(e.left, scope)
            self.check(e.right, scope)
            self.unfit_typo(e.left, lambda ty: t.left_of("matches", ty))
            if not (t.lenient(lt) or t.left_of("matches", lt)):
                self.err("FLUO300", f"`matches` needs a string on its left, found {lt}", e.left.span)
            pattern = e.right
            if not (isinstance(pattern, ast.Literal) and pattern.kind == "string"):
                if not isinstance(pattern, ast.Missing):
                    self.err("FLUO306", "the pattern of `matches` must be a string literal", pattern.span)
            else:
                try:
                    self.regexes.check(str(pattern.value))
                except RegexError as exc:
                    self.err("FLUO303", f"invalid regular expression: {exc}", pattern.span)
                except RegexBudgetExhausted:
                    if not self.regexes_unchecked:  # once a rule: each rule with a pattern not checked has an error
                        self.regexes_unchecked = True
                        self.err(
                            "FLUO405",
                            f"regular expression not checked: the patterns of this file before it compile to more "
                            f"than {FILE_INSTRUCTIONS:,} RE2 instructions in all (one RE2 refuses as too large "
                            f"counts {REFUSED_INSTRUCTIONS:,}); use fewer or smaller patterns, or split the file",
                            pattern.span,
                        )
            return self.record(e, t.BOOL)
        return self.arith(e, scope)

    def compared(self, left: ast.Expr, right: ast.Expr, scope: _Scope) -> tuple[t.Type, t.Type]:
        """The types of `left` and `right`, compared: a bare name or string may be an enum value (`error`,
        'server'), so the other side is checked first, and `status == error` and `error == status` both resolve;
        two list literals of one length pair their items so, position by position (`[status] == [error]`)."""
        if isinstance(left, ast.ListLit) and isinstance(right, ast.ListLit) and len(left.items) == len(right.items):
            pairs = [self.compared(x, y, scope) for x, y in zip(left.items, right.items, strict=True)]
            return self.list_type(left, [x for x, _ in pairs]), self.list_type(right, [y for _, y in pairs])
        if _maybe_enum(left) and (not _maybe_enum(right) or (_is_field(right) and not _is_field(left))):
            rt = self.check(right, scope)
            return self.check(left, scope, self.enum_shape(right)), rt
        lt = self.check(left, scope)
        return lt, self.check(right, scope, self.enum_shape(left))

    def enum_shape(self, e: ast.Expr) -> _Enum:
        """The enum a bare name or string beside the checked `e` is read as a value of (`_enum_beside`), through
        lists: for a list literal, its items' position by position."""
        if isinstance(e, ast.ListLit):
            shape = tuple(self.enum_shape(i) for i in e.items)
            return shape if any(x is not None for x in shape) else None
        ty = self.out.types.get(id(e), t.ANY)
        while ty.is_list and ty.elem is not None:
            ty = ty.elem
        return _enum_beside(ty)

    def compare(self, e: ast.Binary, scope: _Scope) -> t.Type:
        lt, rt = self.compared(e.left, e.right, scope)
        ordering = e.op not in ("==", "!=")
        self.unfit_typo(e.left, lambda ty: t.lenient(rt) or t.comparable(ty, rt, ordering=ordering))
        self.unfit_typo(e.right, lambda ty: t.lenient(lt) or t.comparable(ty, lt, ordering=ordering))
        self.unsure_typo(e.left, lambda ty: _enum_value_beside(ty, e.right))
        self.unsure_typo(e.right, lambda ty: _enum_value_beside(ty, e.left))
        if {lt, rt} == {t.ANY, t.DURATION}:
            # as `amount + 1s` (FLUO302): the attribute's number would be read as nanoseconds
            hint = self.unit_hint(e.left if lt == t.ANY else e.right)
            self.err(
                "FLUO300", f"cannot compare {lt} with {rt} using `{e.op}`{hint}", e.op_span, related=self.operands(e)
            )
        elif (lt == t.ANY and self.timed(e.right)) or (rt == t.ANY and self.timed(e.left)):
            self.err(
                "FLUO300",
                f"cannot compare {lt} with {rt} using `{e.op}`: {_NO_DURATIONS}",
                e.op_span,
                related=self.operands(e),
            )
        elif (clash := self.unit_clash(e.left, lt, e.right, rt)) is not None:
            self.unit_clash_error(e, f"cannot compare {lt} with {rt} using `{e.op}`", *clash)
        elif not t.comparable(lt, rt, ordering=ordering):
            number = _unitless(e, lt, rt)
            if number is not None:
                self.unitless(number, f"cannot compare {lt} with {rt} using `{e.op}`")
                return self.record(e, t.BOOL)
            if ordering and lt == rt:
                msg = f"`{e.op}` does not order {lt} values"
            else:
                msg = f"cannot compare {lt} with {rt} using `{e.op}`"
            self.err("FLUO300", msg, e.op_span, related=self.operands(e))
        else:
            self.null_comparison(e)
            self.vacuous(e)
            self.unequal_lengths(e)
        return self.record(e, t.BOOL)

    def unequal_lengths(self, e: ast.Binary) -> None:
        """`[status, kind] == [error]`: list literals of different lengths, at the top or paired inside, are
        never equal whatever their items, so `==` never holds and `!=` always does (FLUO307)."""
        if e.op not in ("==", "!="):
            return
        pair = _unequal_lists(e.left, e.right)
        if pair is None:
            return
        holds = "never holds" if e.op == "==" else "always holds"
        counts = " and ".join(f"{n} item{'s' if n != 1 else ''}" for n in pair)
        self.warn("FLUO307", f"this comparison {holds}: lists of {counts} are never equal", e.span)

    def unit_clash(self, a: ast.Expr, at: t.Type, b: ast.Expr, bt: t.Type) -> tuple[ast.Expr, ast.Expr] | None:
        """Where `a` (of type `at`) compared with `b` (`bt`) would hold an attribute's number against a duration,
        or a list of them, item by item through lists (`[lat] == [1s]`, `[[lat]] contains [1s]`): the attribute's
        part and the duration's (a typed list's item is the list itself), or None."""
        if at == t.ANY and self.dated(b, bt):
            return a, b
        if bt == t.ANY and self.dated(a, at):
            return b, a
        if not (at.is_list and bt.is_list):
            return None
        xs, ys = self.parts(a, at), self.parts(b, bt)
        paired = isinstance(a, ast.ListLit) and isinstance(b, ast.ListLit) and len(xs) == len(ys)
        pairs = zip(xs, ys, strict=True) if paired else ((x, y) for x in xs for y in ys)
        return next((c for x, y in pairs if (c := self.unit_clash(*x, *y)) is not None), None)

    def parts(self, e: ast.Expr, ty: t.Type) -> list[tuple[ast.Expr, t.Type]]:
        """The items of the list `e` (of type `ty`) and their types: a literal's own, else the list's item type."""
        if isinstance(e, ast.ListLit):
            return [(i, self.out.types.get(id(i), t.ANY)) for i in e.items if id(i) not in self.unitless_items]
        return [(e, ty.elem or t.ANY)]

    def dated(self, e: ast.Expr, ty: t.Type) -> bool:
        """Whether `e` (of type `ty`) is a duration or a list holding one (`[1s]`, `[[1s], 'a']`)."""
        return ty == t.DURATION or (ty.is_list and any(self.dated(*p) for p in self.parts(e, ty)))

    def unit_clash_error(self, e: ast.Binary, says: str, attr: ast.Expr, timed: ast.Expr) -> None:
        """FLUO300 `says` for `e`, which holds the attribute `attr` against the duration `timed` or a list of
        them (`unit_clash`): at the operator where the attribute is an operand, else at the attribute."""
        dur = self.out.types.get(id(timed)) == t.DURATION
        why = self.unit_hint(attr) if dur else f": {_NO_DURATIONS}"
        if attr is e.left or attr is e.right:
            self.err("FLUO300", f"{says}{why}", e.op_span, related=self.operands(e))
            return
        related = (
            Related("this has no declared type (any)", attr.span, self.path),
            Related("this is a duration" if dur else "this holds durations", timed.span, self.path),
        )
        self.err(
            "FLUO300",
            f"{says}: item by item, an attribute is compared with a duration{why}",
            attr.span,
            related=related,
        )

    def unit_hint(self, e: ast.Expr) -> str:
        """`_unit_hint` for `e`, an attribute's number or a value made of one (`trace.root.lat * 1`,
        `trace.spans.sum(lat)`): named by the attribute read outermost in it, first of those."""
        stack = [e]
        while stack:
            x = stack.pop()
            read = isinstance(self.out.refs.get(id(x)), AttrRef) or (
                isinstance(x, ast.Index) and self.out.types.get(id(x.target)) in (t.MAP, t.ANY)
            )
            if read and _attribute_text(x) is not None:  # `lat`, `attributes["t"]`, `waits[0]`
                return _unit_hint(x)
            stack.extend(reversed(ast.children(x)))
        return _unit_hint(e)

    def unitless(self, number: ast.Literal, says: str) -> None:
        """`duration > 500`, `500 in [1s, 2s]`: FLUO300 `says`, on the number, with the unit it needs."""
        hint, fix = _unit_for(number)
        self.err("FLUO300", f"{says}{hint}", number.span, fix)

    def look_for(self, e: ast.Binary, value: ast.Expr, ty: t.Type, listed: ast.Expr, list_ty: t.Type) -> None:
        """`value in listed` (`not in`) and `listed contains value` alike: FLUO300 where no item of the list
        could equal `value` (`ty`), and where an attribute's number would be read as nanoseconds."""
        elem = list_ty.elem or t.ANY

        def says(v: str, listing: str) -> str:
            return (
                f"`contains`: {listing} cannot contain {v}"
                if e.op == "contains"
                else f"`{e.op}`: cannot look for {v} in {listing}"
            )

        looked_for = says("any", str(list_ty)) if ty == t.ANY else says(article(ty), article(list_ty))
        if ty == t.ANY and elem == t.DURATION:  # as `x == 1s`: the number would be read as nanoseconds
            self.err(
                "FLUO300", f"{says('any', str(list_ty))}{self.unit_hint(value)}", e.op_span, related=self.operands(e)
            )
        elif not t.comparable(ty, elem, ordering=False) and elem != t.ANY:
            self.unfit_element(e, value, ty, listed, says(article(ty), article(list_ty)))
        elif elem == t.ANY and isinstance(listed, ast.ListLit) and ty != t.ERROR:
            for item in listed.items:  # a mixed list: each item must be one the value could equal
                item_ty = self.out.types.get(id(item), t.ANY)
                if id(item) in self.unitless_items:
                    continue
                if {ty, item_ty} == {t.ANY, t.DURATION}:
                    hint = self.unit_hint(value if ty == t.ANY else item)
                    self.err("FLUO300", f"`{e.op}`: an attribute never equals a duration{hint}", item.span)
                elif not t.lenient(ty) and not t.lenient(item_ty) and not t.comparable(ty, item_ty, ordering=False):
                    self.err("FLUO300", f"`{e.op}`: {article(ty)} never equals {article(item_ty)}", item.span)
                elif (clash := self.unit_clash(value, ty, item, item_ty)) is not None:
                    self.unit_clash_error(e, looked_for, *clash)
        else:
            clash = next(filter(None, (self.unit_clash(value, ty, *p) for p in self.parts(listed, list_ty))), None)
            if clash is not None:
                self.unit_clash_error(e, looked_for, *clash)

    def timed(self, e: ast.Expr) -> bool:
        """Whether `e` is a duration or holds one (`[1s]`, `[1s, 'a']`, `[[1s]]`): what no attribute equals."""
        ty = self.out.types.get(id(e), t.ANY)
        while ty.is_list and ty.elem is not None:
            ty = ty.elem
        return ty == t.DURATION or (isinstance(e, ast.ListLit) and any(self.timed(i) for i in e.items))

    def unfit_element(self, e: ast.Binary, value: ast.Expr, ty: t.Type, listed: ast.Expr, says: str) -> None:
        """FLUO300 `says` for `value` (`ty`) that no element of the list `listed` could equal (`in`, `not in`,
        `contains`), with the unit a duration takes where one side is a number literal: `500 in [1s, 2s]` and
        `[1s, 2s] contains 500` as `duration > 500`, `duration in [100, 200]` with the units for each."""
        elem = self.out.types.get(id(listed), t.ANY).elem or t.ANY
        number = _unit_wanted(value, ty, elem)
        if number is not None:
            self.unitless(number, says)
            return
        hint = ""
        items = listed.items if isinstance(listed, ast.ListLit) else ()
        numbers = [i.value for i in items if isinstance(i, ast.Literal)]
        if ty == t.DURATION and elem in (t.INT, t.FLOAT) and items and len(numbers) == len(items):
            ms, s = (", ".join(f"{_number_text(n)}{u}" for n in numbers) for u in ("ms", "s"))
            hint = f"; a duration takes a unit: `[{ms}]` if they count milliseconds, `[{s}]` if seconds"
        self.err("FLUO300", f"{says}{hint}", e.op_span, related=self.operands(e))

    def fits_here(self, e: ast.Expr, ty: t.Type | None) -> bool:
        """Whether a value of type `ty` (None: none, a call that cannot be made) could stand where `e` is: it has
        what is read after `e` (`.count()`), and is what `e`'s place takes (a boolean in a clause)."""
        if ty is None:
            return False
        read = self.read_after.get(id(e))
        if read is not None:
            return _fits(ty, read)
        want = self.wanted.get(id(e))
        return want is None or want(ty)

    def unsure_typo(self, e: ast.Expr, fits: Callable[[t.Type], bool]) -> None:
        """Keep FLUO205's guess for `e` as a guess, not a fix, when the intrinsic would stand there but what it is
        compared with would then be an error: `stauts == 'server'` may mean `status` with the value the slip
        (FLUO304 then), or an attribute; it is said, and an editor offers it, but no fix applies it unasked."""
        ty, pending = self.typo_types.get(id(e)), self.pending_typos.get(id(e))
        if ty is not None and pending is not None and pending.code == "FLUO205" and not fits(ty):
            self.pending_typos[id(e)] = replace(pending, suggestion=None, guess=pending.suggestion)

    def unfit_typo(self, e: ast.Expr, fits: Callable[[t.Type], bool]) -> None:
        """Drop FLUO205's guess for `e` when the intrinsic it names could not stand there: `state == "x"`
        is a fine attribute, and `start` (a timestamp) never equals a string; and FLUO202's `call it: m()`
        or FLUO201's fix `m` (still named) when what `m()` gives could not (`.exists <= 5`, `service.size() == 'a'`:
        `length()` is an int); through arithmetic too (`srvice + 'x' > 3`). FLUO207's `True` stays a
        warning, but no longer says to write `true` where a boolean could not stand (`True == 'x'`)."""
        for operand, gives in self.carried.get(id(e), ()):
            self.unfit_typo(operand, _through(gives, fits))
        call_fix = self.call_fixes.get(id(e))
        if call_fix is not None and not fits(call_fix[1]):
            # `.exists <= 5`: `exists()` is a bool, which the comparison would refuse; the signature says so
            diag, _, message = call_fix
            at = next((i for i, d in enumerate(self.diags) if d is diag), None)
            if at is not None:  # FLUO201 still says "did you mean `m`?": a guess
                guess = diag.suggestion if message == diag.message else None
                self.diags[at] = replace(diag, message=message, suggestion=None, guess=guess)
        ty = self.typo_types.get(id(e))
        pending = self.pending_typos.get(id(e))
        if ty is None or pending is None or fits(ty):
            return
        if pending.code == "FLUO207" and isinstance(e, ast.Name):
            message = (
                f"`{e.ident}` reads as a span attribute named `{e.ident}` (FLUO's booleans are `true` and `false`)"
            )
            self.pending_typos[id(e)] = replace(pending, message=message, suggestion=None)
        elif pending.code == "FLUO205" and (hint := _http_status_hint(e)) is not None:
            self.pending_typos[id(e)] = replace(pending, message=hint, suggestion=None, guess=None)
        else:
            del self.pending_typos[id(e)]

    def null_comparison(self, e: ast.Binary) -> None:
        """`x != null`: say how FLUO tests that `x` is present, in place of the warning on `null` alone."""
        if e.op not in ("==", "!="):
            return
        sides = [(n, o) for n, o in ((e.right, e.left), (e.left, e.right)) if id(n) in self.pending_typos]
        nulls = [(n, o) for n, o in sides if isinstance(n, ast.Name) and n.ident.lower() in _NULLS]
        if not nulls:
            return
        null, other = nulls[0]
        dashed, x = self.dashed_keys.get(id(other), (None, _path_text(other)))
        fix = f"{x or 'x'} not in []" if e.op == "!=" else f"not ({x or 'x'} not in [])"
        test = f"that `{x or 'x'}` is {'present' if e.op == '!=' else 'missing'} write `{fix}`"
        message = (
            f"`{null.ident}` reads as a span attribute named `{null.ident}`, so this comparison never holds: "
            f"FLUO has no null (a missing attribute makes any comparison false); to test {test}"
        )
        if dashed is not None:  # `x-request-id != null`: one warning for both, whose fix mends both
            self.diags.remove(dashed)
            message = f"{dashed.message.split('; ')[0]}, and {message}"
        self.pending_typos[id(null)] = warning(
            "FLUO207", message, e.span, path=self.path, suggestion=fix if x is not None else None
        )

    def vacuous(self, e: ast.Binary) -> None:
        """`count() >= 0`, `duration < 0s`, `count() > -1`, `count() == -1`: a comparison of a value that is
        never negative with zero or a negative constant, which no value can change."""
        op: str = e.op
        value, bound = e.left, e.right
        if _sign_of(e.left) is not None and _sign_of(e.right) is None:
            op, value, bound = _MIRRORED[op], e.right, e.left
        sign = _sign_of(bound)
        if not ((sign == 0 and op in ("<", ">=")) or sign == -1):
            return
        ref, ty = self.out.refs.get(id(value)), self.out.types.get(id(value))
        if isinstance(value, ast.Call) and value.method in ("count", "length") and ty == t.INT:
            what = "a count" if value.method == "count" else "a length"
        elif isinstance(ref, MemberRef) and ref.member.name == "duration" and ty == t.DURATION:
            what = "a duration"
        else:
            return
        always = op in (">", ">=", "!=")
        if always and self.may_be_missing(value):  # false without a root; `< 0s` never holds either way
            return
        holds = "always holds" if always else "never holds"
        message = f"this comparison {holds}: {what} is never negative"
        if always and what == "a duration":  # the one exception, so that "always" is true as written
            message += " (only bad input fails it: a span lasting past 64 bits of nanoseconds reads as missing)"
        self.warn("FLUO307", message, e.span)

    def may_be_missing(self, e: ast.Expr) -> bool:
        """Whether `e` can be missing when it runs (a comparison with it is then false): an attribute read, an
        index, a member the registry marks so (`parent`, `trace.root`, `max(...)`), anything read through one
        or given one as a value, and arithmetic but joining strings (a number overflows, `/ 0` is missing)."""
        ref = self.out.refs.get(id(e))
        if isinstance(ref, RootRef | ItRef | EnumRef) or isinstance(e, ast.Literal):
            return False
        if isinstance(e, ast.ListLit):
            return any(self.may_be_missing(item) for item in e.items)
        if isinstance(ref, MemberRef):
            if ref.member.may_be_missing or (ref.base is not None and self.may_be_missing(ref.base)):
                return True
            args = zip(e.args, ref.member.params, strict=False) if isinstance(e, ast.Call) else ()
            return any(p.kind == "value" and self.may_be_missing(a) for a, p in args)
        if isinstance(e, ast.Binary) and e.op == "+":
            sides = (e.left, e.right)
            return any(self.out.types.get(id(s)) != t.STRING or self.may_be_missing(s) for s in sides)
        return True

    def arith(self, e: ast.Binary, scope: _Scope) -> t.Type:
        right = e.right
        if e.op == "-" and isinstance(right, ast.Unary) and right.op == "-" and right.span.start == e.op_span.end:
            self.dashed_until = max(self.dashed_until, e.span.end)  # `true -- note`
        pieces = self.dashed_pieces(e) if e.op == "-" and id(e) not in self.dashed else []
        lt = self.check(e.left, scope)
        rt = self.check(e.right, scope)
        if pieces and any(isinstance(self.out.refs.get(id(p)), AttrRef) for p in pieces):
            self.dashed_key(e, pieces)
            for p in pieces:  # a part of the key is no name: FLUO205's guess for it (`x-knd-id`: `end`) is wrong
                self.pending_typos.pop(id(p), None)
        op = e.op
        self.carried[id(e)] = [
            (e.left, lambda ty: arith_type(op, ty, rt)),
            (e.right, lambda ty: arith_type(op, lt, ty)),
        ]
        self.unfit_typo(e, lambda ty: True)  # `durtion + 1`: `duration + 1` is no sum
        result = arith_type(e.op, lt, rt)
        if result is None:
            hint = ""
            span, fix = e.op_span, None
            if e.op == "-" and (lt, rt) == (t.ANY, t.TIMESTAMP):  # `deadline - start`: the attribute is a time
                hint = _time_hint(e.left, e.right)
            elif t.ANY in (lt, rt) and {lt, rt} & {t.DURATION, t.TIMESTAMP}:
                hint = self.unit_hint(e.left if lt == t.ANY else e.right)
            elif e.op in ("+", "-") and (number := _unitless(e, lt, rt, {t.DURATION, t.TIMESTAMP})) is not None:
                (hint, fix), span = _unit_for(number), number.span  # `duration + 500`
            related = self.operands(e) if span is e.op_span else ()
            self.err("FLUO302", f"cannot apply `{e.op}` to {lt} and {rt}{hint}", span, fix, related=related)
            return self.record(e, t.ERROR)
        return self.record(e, result)

    def dashed_pieces(self, e: ast.Binary) -> list[ast.Expr]:
        """The names of `x-request-id` (a `-` with no space on either side between names), outermost first."""
        pieces: list[ast.Expr] = []
        node: ast.Expr = e
        inner: list[int] = []
        while isinstance(node, ast.Binary) and node.op == "-":
            if node.left.span.end + 1 != node.right.span.start or _path_text(node.right) is None:
                return []
            pieces.append(node.right)
            inner.append(id(node))
            node = node.left
        if _path_text(node) is None:
            return []
        self.dashed.update(inner)
        return [node, *reversed(pieces)]

    def dashed_key(self, e: ast.Binary, pieces: list[ast.Expr]) -> None:
        texts = [_path_text(p) or "" for p in pieces]
        key = "-".join(texts)
        first = self.out.refs.get(id(pieces[0]))
        base = _path_text(first.base) if isinstance(first, AttrRef) and first.base is not None else None
        if isinstance(first, AttrRef) and base is not None:  # `parent.x-y`, `resource.k8s-pod`
            dashed = string_literal("-".join([first.key, *texts[1:]]))
            fix = f"{base}[{dashed}]" if first.source == "map" else f"{base}.attributes[{dashed}]"
        else:
            fix = f"attributes[{string_literal(key)}]"
        self.warn(
            "FLUO207",
            f"`{key}` reads as `{' - '.join(texts)}`; for a key with dashes write `{fix}` "
            "(to subtract, put spaces around `-`)",
            e.span,
            fix,
        )
        self.dashed_keys[id(e)] = (self.diags[-1], fix)

    def require_bool(self, e: ast.Expr, ty: t.Type, what: str) -> None:
        if ty in _BOOLISH:
            return
        if ty in (t.SPANS, t.SPAN):
            self.out.coerced.add(id(e))
            return
        self.err("FLUO301", f"{what} must be a boolean, found {ty}", e.span)


_LITERAL_TYPES = {
    "int": t.INT,
    "float": t.FLOAT,
    "string": t.STRING,
    "bool": t.BOOL,
    "duration": t.DURATION,
}


_NULLS = ("null", "nil", "none", "undefined")
_MIRRORED = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}  # `0 > x` is `x < 0`


def _nearest(word: str, candidates: list[str] | tuple[str, ...]) -> str | None:
    """`nearest`, or the candidate `word` is in another case (`ERROR`, `SERVER`)."""
    return nearest(word, candidates) or next((c for c in candidates if c.lower() == word.lower()), None)


def _unequal_lists(a: ast.Expr, b: ast.Expr) -> tuple[int, int] | None:
    """The lengths of two list literals of different lengths, `a` and `b` or a pair of their items position by
    position (`[[1], 2]` and `[[1, 2], 2]`), or None."""
    if not (isinstance(a, ast.ListLit) and isinstance(b, ast.ListLit)):
        return None
    if len(a.items) != len(b.items):
        return len(a.items), len(b.items)
    return next((p for x, y in zip(a.items, b.items, strict=True) if (p := _unequal_lists(x, y)) is not None), None)


def _fits(ty: t.Type, read: tuple[str, int | None] | None) -> bool:
    """Whether what is read after a name (`.spans`, `.count()`) exists on `ty`, with that many arguments;
    with nothing read after it, whether `ty` is a value at all (a bare `trace` is not)."""
    if read is None:
        return ty not in (t.TRACE, t.WINDOW, t.TRACES)
    name, args = read
    members = b.members_of(ty)
    member = members.get(name) or next((m for n, m in members.items() if n.lower() == name.lower()), None)
    if member is None or (member.kind == "method") != (args is not None):
        return False
    return args is None or sum(1 for p in member.params if not p.optional) <= args <= len(member.params)


def _root_fix(ident: str, windowed: bool, read: tuple[str, int | None] | None) -> str | None:
    """An unknown name outside a predicate as the rule's own root (`trace`, or `window` in a windowed rule)
    or one of its fields (`traces` -> `window.traces`, `SPANS` -> `trace.spans`), when what follows fits it."""
    root, root_ty = ("window", t.WINDOW) if windowed else ("trace", t.TRACE)
    candidates: list[tuple[str, t.Type, tuple[str, ...]]] = [(root, root_ty, ("trace", "window"))]
    for m in b.members_of(root_ty).values():
        if m.kind == "field":
            candidates.append((f"{root}.{m.name}", m.result_type(()), (m.name,)))
    best: tuple[int, str] | None = None
    limit = 1 if len(ident) <= 4 else 2
    for fix, ty, words in candidates:
        d = min(0 if w == ident.lower() else edit_distance(ident, w, limit) for w in words)
        if d <= limit and _fits(ty, read) and (best is None or d < best[0]):
            best = (d, fix)
    return best[1] if best else None


def _through(gives: Callable[[t.Type], t.Type | None], fits: Callable[[t.Type], bool]) -> Callable[[t.Type], bool]:
    """What an operand may be: one with which its node (`x + 1`, `gives`) gives what `fits` takes."""
    return lambda ty: (result := gives(ty)) is not None and fits(result)


def _boolish(ty: t.Type) -> bool:
    """Whether a value of `ty` may stand where a boolean goes (`spans` there means `.exists()`)."""
    return ty in _BOOLISH or ty in (t.SPANS, t.SPAN)


def _one_of(types: tuple[t.Type, ...]) -> Callable[[t.Type], bool]:
    """What an argument of `types` takes: one of them (or a value whose type only a trace says)."""
    return lambda ty: t.lenient(ty) or ty in types


def _call_result(ty: t.Type, method: str, arg_types: list[t.Type]) -> t.Type | None:
    """What calling `method` of `ty` with arguments of `arg_types` gives; None if it takes no such number."""
    member = b.members_of(ty).get(method)
    if member is None or not _fits(ty, (method, len(arg_types))):
        return None
    return member.result_type(arg_types)


def _foreign_method(ty: t.Type, name: str, arg_types: list[t.Type]) -> tuple[str, t.Type] | None:
    """FLUO's name for another language's method (`size` -> `count`), when it takes `arg_types`; and what
    calling it gives."""
    where = "string" if ty == t.ANY else ty.name
    fix = b.foreign_name(where, name)
    if fix is None:
        return None
    *path, method = fix.split(".")
    for step in path:
        member = b.lookup(ty, step)
        if member is None or member.kind != "field":
            return None
        ty = member.result_type(())
    result = _call_result(ty, method, arg_types)
    return None if result is None else (fix, result)


def _http_status_hint(e: ast.Expr) -> str | None:
    """FLUO205's message for a bare `status_code` (`statusCode`, `it.status_code`) where the span `status` could
    not stand (`status_code == 500`): most likely an HTTP status code, which OpenTelemetry names otherwise."""
    name = e.ident if isinstance(e, ast.Name) else e.name if isinstance(e, ast.Field) else None
    if name is None or b.foreign_name("span", name) != "status":
        return None
    return (
        f"`{name}` reads as a span attribute, and the span `status` (`ok`, `error`, `unset`) is no number: "
        "OpenTelemetry names an HTTP response's status code `http.response.status_code` (`http.status_code` "
        f"before its semantic conventions 1.21); if your spans have the key `{name}`, write "
        f"`attributes[{string_literal(name)}]`"
    )


def _instants_hint(method: str, arg: ast.Expr, spans: ast.Expr) -> str:
    """FLUO305's reason for a timestamp added up (`sum(start)`, `avg(end)`), and what to write: a duration per
    span (its own, or its time since the start of the trace or window the spans come from), or `min`/`max`."""
    root = spans
    while isinstance(root, ast.Field | ast.Call):
        root = root.target
    origin = "window" if isinstance(root, ast.Name) and root.ident == "window" else "trace"
    written = _path_text(arg) or "start"
    return (
        f": a timestamp is an instant, and a sum of instants means nothing; take a duration per span, like "
        f"`{method}(duration)` or `{method}({written} - {origin}.start)` (its time since the {origin} began), "
        f"or the earliest or latest with `min({written})` or `max({written})`"
    )


def _span_field_type(name: str) -> t.Type:
    member = b.lookup(t.SPAN, name)
    return member.result_type(()) if member is not None else t.ANY


def _misread_name(ident: str) -> tuple[str, str | None] | None:
    """A bare name read as an attribute, surely meant as another language's literal: why, and the fix."""
    if ident.lower() in ("true", "false"):
        return f"`{ident}` reads as a span attribute named `{ident}`; did you mean `{ident.lower()}`?", ident.lower()
    if ident.lower() in _NULLS:
        return (
            f"`{ident}` reads as a span attribute named `{ident}`: FLUO has no null (a missing attribute makes any "
            "comparison false); to test that `x` is present write `x not in []`",
            None,
        )
    return None


def _path_text(e: ast.Expr) -> str | None:
    """`a.b.c` as written, for a bare name or a chain of fields on one; None for anything else."""
    names: list[str] = []
    while isinstance(e, ast.Field):
        names.append(e.name)
        e = e.target
    if not isinstance(e, ast.Name):
        return None
    return ".".join([e.ident, *reversed(names)])


_NO_DURATIONS = "an attribute's list holds no durations (its numbers have no unit)"
"""FLUO300's reason for a duration looked for in, or a list of them compared with, an attribute (`l contains 1s`)."""


def _attribute_text(attr: ast.Expr) -> tuple[str, str] | None:
    """An attribute read as written (`latency_ms`, `attributes["latency ms"]`, `waits_ms[0]`) and the key that
    names its unit (`latency ms`, `waits_ms`); None for anything else."""
    path = _path_text(attr)
    if path is not None:
        return path, path
    if not (isinstance(attr, ast.Index) and isinstance(attr.key, ast.Literal)):
        return None
    target = _path_text(attr.target)
    if target is None:
        return None
    if attr.key.kind == "string" and len(str(attr.key.value)) <= 40:
        return f"{target}[{string_literal(str(attr.key.value))}]", str(attr.key.value)
    if attr.key.kind == "int":
        return f"{target}[{attr.key.value}]", target
    return None


def _unit_hint(attr: ast.Expr) -> str:
    """FLUO302's hint for an attribute's number next to a duration, with a unit guessed from its key (the
    attribute as written, `_attribute_text`; else `amount`, a placeholder)."""
    x, key = _attribute_text(attr) or ("amount", "amount")
    suffix = key.replace(".", "_").replace(" ", "_").rsplit("_", 1)[-1].lower()
    unit = {"ns": "1ns", "us": "1us", "ms": "1ms", "millis": "1ms", "s": "1s", "sec": "1s", "seconds": "1s"}
    return f"; an attribute's number has no unit: give it one, e.g. `{x} * {unit.get(suffix, '1ms')}`"


def _time_hint(attr: ast.Expr, time: ast.Expr) -> str:
    """FLUO302's hint for an attribute minus a timestamp (`deadline - start`): an attribute is read as a time only
    where it is compared with one, so the difference is written as a comparison (no unit given to the attribute
    would make it a time)."""
    x, at = _path_text(attr) or "deadline", _path_text(time) or "start"
    return (
        f"; an attribute is read as a time only where it is compared with one: "
        f"for `{x} - {at} > 5s`, write `{x} > {at} + 5s`"
    )


def _unitless(e: ast.Binary, lt: t.Type, rt: t.Type, timed: set[t.Type] | None = None) -> ast.Literal | None:
    """The number literal that `e` holds against a duration (`duration > 500`; `timed`: or another type of
    those, `end - 5`), if it holds one."""
    for number, ty, other in ((e.left, lt, rt), (e.right, rt, lt)):
        if (literal := _unit_wanted(number, ty, other, timed)) is not None:
            return literal
    return None


def _unit_wanted(e: ast.Expr, ty: t.Type, other: t.Type, timed: set[t.Type] | None = None) -> ast.Literal | None:
    """`e` (of type `ty`) if it is a number literal held against a duration, `other` (`timed`: or another type
    of those): the number that wants a unit."""
    if other in (timed or {t.DURATION}) and ty in (t.INT, t.FLOAT) and isinstance(e, ast.Literal):
        return e
    return None


def _unit_for(number: ast.Literal) -> tuple[str, str | None]:
    """The hint for a number literal where a duration goes, and its fix: which unit, only its writer knows,
    so there is a fix only for zero, the same in every unit."""
    written = _number_text(number.value)
    if number.value == 0:
        return f"; a duration takes a unit: write `{written}s`", f"{written}s"
    return f"; a duration takes a unit: `{written}ms` if it counts milliseconds, `{written}s` if seconds", None


def _number_text(value: object) -> str:
    """A number literal's value as FLUO writes one (`1000` for `1e3`), to put a unit after."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = str(value)
    if "e" not in text:
        return text
    plain = format(Decimal(text), "f")  # 1.5e-07 -> 0.00000015, exactly the digits written
    return plain.rstrip("0").rstrip(".") if "." in plain else plain


def _enum_value_beside(ty: t.Type, other: ast.Expr) -> bool:
    """For a guess of type `ty` compared with `other`: unless `ty` is an enum and `other` a string or bare name
    that is none of its values (`statusCode == 'auth'`, whose `status == 'auth'` is FLUO304)."""
    if ty not in t.ENUMS:
        return True
    if isinstance(other, ast.Literal) and other.kind == "string":
        return str(other.value) in t.ENUMS[ty]
    if isinstance(other, ast.Name) and other.ident not in b.SPAN_FIELD_NAMES:
        return other.ident in t.ENUMS[ty]
    return True


def _sign_of(e: ast.Expr) -> int | None:
    """-1, 0 or 1 for a number or duration constant (`0`, `-1`, `-500ms`), else None."""
    negated = False
    while isinstance(e, ast.Unary) and e.op == "-":
        negated, e = not negated, e.operand
    if not isinstance(e, ast.Literal) or not isinstance(e.value, int | float) or isinstance(e.value, bool):
        return None
    sign = (e.value > 0) - (e.value < 0)
    return -sign if negated else sign


def _enum_beside(ty: t.Type) -> t.Type | None:
    """The enum a bare name or string beside a value of type `ty` is read as a value of (`status == error`);
    `t.ERROR` where that value is an error, as it may have been meant to be an enum (`check`)."""
    return ty if ty in t.ENUMS or ty == t.ERROR else None


def _maybe_enum(e: ast.Expr) -> bool:
    return isinstance(e, ast.Name) or (isinstance(e, ast.Literal) and e.kind == "string")


def _is_field(e: ast.Expr) -> bool:
    """A bare span field name (`status`): in `error == status` it decides what `error` is."""
    return isinstance(e, ast.Name) and e.ident in b.SPAN_FIELD_NAMES


def arith_type(op: str, lt: t.Type, rt: t.Type) -> t.Type | None:
    """The result type of `lt op rt`, or None when the operator does not apply."""
    if lt == t.ERROR or rt == t.ERROR:
        return t.ERROR
    if lt == t.ANY or rt == t.ANY:
        timed = {lt, rt} & {t.DURATION, t.TIMESTAMP}
        if timed and (op in ("+", "-") or (op == "/" and rt != t.ANY)):
            return None  # an attribute's number has no unit: `amount + 1s` would read it as nanoseconds
        if (op == "*" and timed == {t.DURATION}) or (op == "/" and lt == t.DURATION):
            return t.DURATION  # `amount * 1ms`, `1s / amount`: the number gets the unit
        return t.ANY
    num = t.is_numeric(lt) and t.is_numeric(rt)
    if op == "+":
        if num:
            return t.INT if lt == rt == t.INT else t.FLOAT
        if lt == rt and lt in (t.DURATION, t.STRING):
            return lt
        if {lt, rt} == {t.TIMESTAMP, t.DURATION}:
            return t.TIMESTAMP
    elif op == "-":
        if num:
            return t.INT if lt == rt == t.INT else t.FLOAT
        if lt == rt == t.DURATION or lt == rt == t.TIMESTAMP:
            return t.DURATION
        if lt == t.TIMESTAMP and rt == t.DURATION:
            return t.TIMESTAMP
    elif op == "*":
        if num:
            return t.INT if lt == rt == t.INT else t.FLOAT
        if (lt == t.DURATION and t.is_numeric(rt)) or (rt == t.DURATION and t.is_numeric(lt)):
            return t.DURATION
    elif op == "/":
        if num:
            return t.FLOAT
        if lt == t.DURATION and t.is_numeric(rt):
            return t.DURATION
        if lt == rt == t.DURATION:
            return t.FLOAT
    return None


def _unify(types: list[t.Type]) -> t.Type:
    real = [x for x in types if x != t.ERROR]
    if not real:
        return t.ANY
    if all(x == real[0] for x in real):
        return real[0]
    if all(t.is_numeric(x) for x in real):
        return t.FLOAT
    return t.ANY


def _arity_message(m: b.Member, got: int) -> str:
    params = m.params
    required = sum(1 for p in params if not p.optional)
    want = plural(required, "argument") if required == len(params) else f"{required} to {len(params)} arguments"
    return f"`{m.name}` takes {want} ({m.signature}), got {got}"


def _meta_text(v: ast.MetaItem) -> str:
    """A metadata value as written (strings quoted), without recursion: lists may nest up to `MAX_DEPTH`."""
    out: list[str] = []
    todo: list[ast.MetaItem | str] = [v]  # popped from the end; a str is written as is
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            out.append(item)
        elif item.kind == "list" and isinstance(item.value, list):
            parts: list[ast.MetaItem | str] = ["["]
            for k, i in enumerate(item.value):
                parts += [", ", i] if k else [i]
            parts.append("]")
            todo.extend(reversed(parts))
        elif item.kind == "string":
            out.append(repr(item.value))
        elif item.kind == "bool":
            out.append("true" if item.value else "false")
        else:
            out.append(str(item.value))
    return "".join(out)


def check_rule(rule: ast.Rule, path: str, regexes: RegexBudget | None = None) -> tuple[CheckedRule, list[Diagnostic]]:
    """Check one rule; `regexes` is its file's budget of RE2 compiling, shared with the file's other rules."""
    checker = _Checker(rule, path, regexes)
    checked = checker.rule()
    return checked, checker.diags


def duplicate_ids(rules: Iterable[tuple[ast.Rule, str]]) -> list[tuple[ast.Rule, Diagnostic]]:
    """FLUO213 for every (rule, path) whose id an earlier one in the order given already has."""
    out: list[tuple[ast.Rule, Diagnostic]] = []
    first: dict[str, tuple[ast.Rule, str]] = {}
    for rule, path in rules:
        if not rule.id:
            continue
        if rule.id not in first:
            first[rule.id] = (rule, path)
            continue
        prev, prev_path = first[rule.id]
        line, col = one_based(prev.id_span)
        out.append(
            (
                rule,
                error(
                    "FLUO213",
                    f"rule id `{rule.id}` is already defined at {prev_path}:{line}:{col}",
                    rule.id_span,
                    path=path,
                    related=(Related("first defined here", prev.id_span, prev_path),),
                ),
            )
        )
    return out


def check_files(
    files: list[ast.RuleFile], regexes: dict[str, RegexBudget] | None = None
) -> tuple[list[CheckedRule], list[Diagnostic]]:
    """Check every rule of every file, and that rule ids are unique across them all. `regexes` holds the pattern
    budget of a path whose earlier part was checked before (an editor's document, checked a rule at a time);
    a path without one gets its own."""
    checked: list[CheckedRule] = []
    diags: list[Diagnostic] = []
    pairs = [(rule, f.path) for f in files for rule in f.rules if rule.id]
    duplicates = {id(rule): d for rule, d in duplicate_ids(pairs)}
    regexes = dict(regexes or {})
    for rule, path in pairs:
        c, d = check_rule(rule, path, regexes.setdefault(path, RegexBudget()))
        if id(rule) in duplicates:
            diags.append(duplicates[id(rule)])
            diags.extend(d)  # still report what else is wrong
            continue
        checked.append(c)
        diags.extend(d)
    return checked, diags
