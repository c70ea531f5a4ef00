"""Completion and signature help, from the grammar and the typechecker rather than from guesses.

Only the rule around the cursor is read, so a syntax error in another rule does not
matter. The partial word at the cursor is taken off, and then:

- `parser.expected_at` says which tokens the grammar accepts there (keywords come from it);
- the text up to the cursor is analysed with a placeholder name in place of the word
  and the brackets it leaves open closed, and the typechecker says what the placeholder
  is: a metadata key or value, a member of a typed receiver, a name in a predicate
  (intrinsics and attribute keys) or outside one (roots), or an enum value compared
  with `status` / `kind`;
- where a syntax error earlier in the rule leaves that unresolved, the cursor's line is
  tried on its own;
- past the `}` that closes the rule, the cursor is at the top level, where only a new rule
  can come, however broken the rule above is.

Inside `attributes["...` the attribute keys complete as the string's content.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from lsprotocol import types as lsp

from fluo_lang import api, ast
from fluo_lang import builtins as b
from fluo_lang import types as t
from fluo_lang.parser import DURATION_UNITS, expected_at, keywords, lex, meta_key_meant, terminal_text
from fluo_lang.typecheck import META_KEYS, SEVERITIES, AttrRef, CheckedRule, MemberRef
from fluo_lang.values import escape_string, string_literal
from fluo_run.testing.update import flow_yaml

from .document import RuleDocument
from .positions import LineIndex
from .syntax import expressions

PLACEHOLDER = "__fluo_cursor__"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WORD_AFTER = re.compile(r"[A-Za-z0-9_]*")
_KEY_AFTER = re.compile(r"[A-Za-z0-9_.\-]*")  # what of an attribute key follows the cursor in an unclosed string
_EXPONENT = re.compile(r"[eE][0-9]*")  # the word after a number's digits that is (the start of) its exponent
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WINDOWED = re.compile(r"^\s*window\s+[0-9]", re.MULTILINE)
_ITEM_START = re.compile(r"\s*(?:(?:expect|detect)\b|(?:when|always|never)\s*\{|[A-Za-z_][A-Za-z0-9_]*\s*:)?")
_ITEM_KEYWORDS = ("expect", "detect", "when", "always", "never", "window")
_SKELETONS = (
    ("rule (expect)", "rule ${1:rule_id} {\n  severity: ${2|warning,info,error,critical|}\n"
     "  description: \"$3\"\n  expect ${4:trace.spans.where(${5:service == 'auth'}).count() <= 5}\n}"),
    ("rule (detect)", "rule ${1:rule_id} {\n  severity: ${2|warning,info,error,critical|}\n"
     "  detect ${3:trace.spans.where(${4:status == error}).count() > 0}\n}"),
    ("rule (when / always / never)", "rule ${1:rule_id} {\n  severity: ${2|warning,info,error,critical|}\n"
     "  when { ${3:trace.has(name == \"payment.charge_card\")} }\n"
     "  always { ${4:trace.has(name == \"payment.fraud_check\")} }\n}"),
    ("rule (window)", "rule ${1:rule_id} {\n  severity: ${2|warning,info,error,critical|}\n  window ${3:1m}\n"
     "  expect ${4:window.spans.where(${5:service == 'auth'}).count() <= 300}\n}"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cursor:
    """The cursor in the rule around it: the text before the partial word, and the word's extent."""

    chunk_start: int
    head: str  # the rule's text up to the partial word
    word: str
    word_start: int  # document offsets of the whole word under the cursor
    word_end: int
    rest: str  # the text after the word, on its line


def cursor_at(doc: RuleDocument, offset: int) -> Cursor:
    chunk = doc.chunk_at(offset)
    text = chunk.analysis.text
    rel = offset - chunk.start
    prefix = text[:rel]
    m = _WORD.search(prefix)
    word = m.group(0) if m else ""
    after = _WORD_AFTER.match(text, rel)
    tail = after.group(0) if after else ""
    end = rel + len(tail)
    eol = text.find("\n", end)
    return Cursor(
        chunk.start, prefix[: rel - len(word)], word, chunk.start + rel - len(word), chunk.start + end,
        text[end : eol if eol >= 0 else len(text)],
    )  # fmt: skip


_OPENERS = ("LPAR", "LSQB", "LBRACE")
_CLOSERS = ("RPAR", "RSQB", "RBRACE")


@dataclass(frozen=True, slots=True)
class Head:
    """The rule's text up to the cursor, with the finished operands of `and` / `or` chains taken out.

    `expect A or B or trace.spans.where(C and name == |` reads as `expect trace.spans.where(name == |`:
    `and` and `or` bind loosest, so what follows the last one at each bracket depth is an expression
    in the same place, and the placeholder means the same in it. On a rule of thousands of terms on one
    line, this is what completion and signature help parse and check, not the whole rule.
    """

    text: str
    cuts: tuple[tuple[int, int], ...]  # (start, end) of each cut in the rule's text, in order

    def offset(self, rel: int) -> int:
        """A chunk offset before the cursor, in `text`."""
        return rel - sum(min(end, rel) - start for start, end in self.cuts if start < rel)


def short_head(doc: RuleDocument, chunk_start: int, head: str) -> Head:
    """`Head` of `head`, the chunk's text up to the cursor, read with the chunk's cached lexemes."""
    lexemes = doc.chunk_at(chunk_start).analysis.lexemes
    n = bisect_right([x.end for x in lexemes], len(head))  # ascending; what straddles the cursor is lexed again
    shift = lexemes[n - 1].end if n else 0
    tail = [(x.kind, x.start + shift, x.end + shift) for x in lex(head[shift:])]
    starts = [0]  # where the expression being read starts, at each bracket depth
    cuts: list[tuple[int, int]] = []
    for kind, _, end in [*((x.kind, x.start, x.end) for x in lexemes[:n]), *tail]:
        if kind in _OPENERS:
            starts.append(end)
        elif kind in _CLOSERS:
            if len(starts) > 1:
                starts.pop()
        elif kind in ("COMMA", "EXPECT", "DETECT"):
            starts[-1] = end
        elif kind in ("AND", "OR"):
            if cuts and cuts[-1][1] == starts[-1]:
                cuts[-1] = (cuts[-1][0], end)
            else:
                cuts.append((starts[-1], end))
            starts[-1] = end
    merged: list[tuple[int, int]] = []
    for start, end in sorted(cuts):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    kept, at = [], 0
    for start, end in merged:
        kept.append(head[at:start])
        at = end
    kept.append(head[at:])
    return Head("".join(kept), tuple(merged))


def _inside_comment_or_string(doc: RuleDocument, cur: Cursor) -> bool:
    pos = len(cur.head)
    for x in doc.chunk_at(cur.chunk_start).analysis.lexemes:
        if x.start >= pos:
            return False
        if x.kind == "COMMENT" or (x.kind == "ERROR" and x.text[:1] in "\"'"):
            if pos <= x.end:
                return True
        elif x.kind == "STRING" and pos < x.end:
            return True
    return False


@dataclass
class _Placeholder:
    """What the typechecker made of the placeholder."""

    kind: str  # "member", "name", "meta_key", "meta_value", "enum", "none"
    receiver: t.Type | None = None
    attr_prefix: str | None = None  # `http.` completes keys under `http`
    resource: bool = False
    in_pred: bool = False
    windowed: bool = False
    meta_key: str = ""
    enum: t.Type | None = None
    compared: tuple[t.Type, bool] | None = None  # compared with a value of this type (True: by `<` and the like)
    wanted: tuple[t.Type, ...] = ()  # an argument of one of these types (`before(_)`: spans); () for any

    def takes_bool(self) -> bool:
        """Whether a bool (`true`, `not x`) here typechecks against what it is compared with or passed to, as far
        as it is known."""
        if self.wanted and t.BOOL not in self.wanted:
            return False
        return self.compared is None or t.comparable(self.compared[0], t.BOOL, ordering=self.compared[1])


_CLOSER = {"LPAR": ")", "LSQB": "]", "LBRACE": "}"}


def with_placeholder(head: str) -> str:
    """The text with the placeholder at its end and the brackets it leaves open closed.

    The parser's recovery would close them too, but searching for the insertion costs
    ten times the parse.
    """
    return head + PLACEHOLDER + _closers(head)


def _closers(head: str) -> str:
    """The brackets that close what `head` leaves open."""
    open_: list[str] = []
    for x in lex(head):
        if x.kind in _CLOSER:
            open_.append(x.kind)
        elif x.kind in ("RPAR", "RSQB", "RBRACE") and open_:
            open_.pop()
    return "".join(_CLOSER[k] for k in reversed(open_))


def _duration_fits(path: str, head: str) -> bool:
    """Whether the number `head` ends with can be a duration: a unit after it adds no error
    (`duration > 5`, `window 5`), where it would in `count() > 5`. What the checker says of
    the rule's shape (FLUO214 no clause yet, ...) is left out: it is about the clauses still
    to be written, and it is held back while the number without a unit is a syntax error."""
    closers = _closers(head)

    def errors(text: str) -> Counter[str]:
        diags = api.analyze([(path, text + closers)]).diagnostics
        return Counter(d.code for d in diags if d.is_error and d.code not in api.SHAPE_CODES)

    return not errors(head + "s") - errors(head)


def _placeholder(path: str, head: str) -> _Placeholder:
    analysis = api.analyze([(path, with_placeholder(head))])
    for f in analysis.files:
        for rule in f.rules:
            for m in rule.meta:
                if m.key == PLACEHOLDER:
                    return _Placeholder("meta_key")
                written = f.text[m.span.start : m.value.span.start].rstrip(" \t:")
                if m.value.kind == "ident" and m.value.value == PLACEHOLDER and written:
                    # a value, never an expression; after a slipped key (`sevérity: |`) the values of the key meant.
                    # No key written: the recovery inserted one (`> \n severity: |` read `severity` as an operand)
                    key = m.key if m.key in META_KEYS else meta_key_meant(written) or m.key
                    return _Placeholder("meta_value", meta_key=key)
                if m.value.kind == "list" and _holds_placeholder(m.value):  # `tags: [a, |`: free words
                    return _Placeholder("meta_value", meta_key=m.key)
    for checked in analysis.rules:
        found = _find(checked)
        if found is not None:
            return found
    return _Placeholder("none")


def _holds_placeholder(item: ast.MetaItem) -> bool:
    if isinstance(item.value, list):
        return any(_holds_placeholder(x) for x in item.value)
    return item.kind == "ident" and item.value == PLACEHOLDER


def _find(checked: CheckedRule) -> _Placeholder | None:
    windowed = bool(checked.rule.windows)
    parents = {id(e): p for e, p in expressions(checked.rule)}
    for e, _ in expressions(checked.rule):
        if isinstance(e, ast.Field) and e.name == PLACEHOLDER:
            ref = checked.refs.get(id(e.target))
            receiver = checked.types.get(id(e.target), t.ERROR)
            if isinstance(ref, AttrRef) and receiver == t.ANY:
                return _Placeholder("member", receiver, ref.key, ref.source == "map", windowed=windowed)
            if receiver == t.MAP:
                resource = isinstance(ref, MemberRef) and ref.member.name == "resource"
                return _Placeholder("member", receiver, "", resource, windowed=windowed)
            return _Placeholder("member", receiver, windowed=windowed)
        if isinstance(e, ast.Name) and e.ident == PLACEHOLDER:
            enum = _enum_context(checked, e)
            if enum is not None:
                return _Placeholder("enum", enum=enum, windowed=windowed)
            in_pred = isinstance(checked.refs.get(id(e)), AttrRef)
            compared, wanted = _compared(checked, e, parents), _wanted(checked, e, parents)
            return _Placeholder("name", in_pred=in_pred, windowed=windowed, compared=compared, wanted=wanted)
    return None


def _wanted(checked: CheckedRule, e: ast.Expr, parents: dict[int, ast.Expr | None]) -> tuple[t.Type, ...]:
    """The types the placeholder may have: what the method whose argument it is takes there (`bool` for a
    predicate), a list right of `in`, a string right of `matches`; () for any."""
    call = parents.get(id(e))
    if isinstance(call, ast.Binary) and call.right is e:
        return {"in": (t.list_of(t.ANY),), "not in": (t.list_of(t.ANY),), "matches": (t.STRING,)}.get(call.op, ())
    if not isinstance(call, ast.Call):
        return ()
    ref = checked.refs.get(id(call))
    i = next((i for i, a in enumerate(call.args) if a is e), len(call.args))
    if not isinstance(ref, MemberRef) or i >= len(ref.member.params):
        return ()
    param = ref.member.params[i]
    return (t.BOOL,) if param.kind == "pred" else param.types


def _operand_type(path: str, head: str) -> t.Type | None:
    """The type of the operand `head` ends with (`count()` of `expect trace.spans.count() `), as the left side
    of an operator written next: the widest expression ending there that binds tighter than a comparison."""
    code = head.rstrip()
    analysis = api.analyze([(path, code + _closers(code))])
    end = len(code)
    for checked in analysis.rules:
        for e, _ in expressions(checked.rule):  # parents first: the first to fit is the widest
            if e.span.end != end or not _tighter_than_comparison(e):
                continue
            ty = checked.types.get(id(e))
            return None if ty is None or t.lenient(ty) else ty
    return None


def _listable(ty: t.Type) -> bool:
    """Whether a list item can equal a value of type `ty`, so that it can stand left of `in` / `not in`: not a
    spans, a trace, a window or traces, which nothing equals."""
    return t.comparable(ty, ty, ordering=False)


def _tighter_than_comparison(e: ast.Expr) -> bool:
    """Whether `e` can be the left side of a comparison, `contains` or `matches` unbracketed."""
    if isinstance(e, ast.Binary):
        return e.op in ("+", "-", "*", "/")
    if isinstance(e, ast.Unary):
        return e.op == "-"
    return not isinstance(e, (ast.Logic, ast.Missing))


def _compared(checked: CheckedRule, e: ast.Expr, parents: dict[int, ast.Expr | None]) -> tuple[t.Type, bool] | None:
    """The type of what the placeholder is compared with (`trace.duration >= _`), and whether by ordering: an
    item of a list is compared with what the list is looked in for (`name in [_]`) or with the items of the
    list it equals (`trace.services == [_]`); what `contains` looks for, with the items of its list or, in a
    string, with a string (`name contains _`)."""
    parent = parents.get(id(e))
    if isinstance(parent, ast.ListLit):
        e, parent = parent, parents.get(id(parent))
        if not isinstance(parent, ast.Binary) or parent.right is not e:
            return None
        ty = checked.types.get(id(parent.left))
        if parent.op in ("in", "not in"):
            return None if ty is None or ty == t.ERROR else (ty, False)
        if parent.op in ("==", "!=") and ty is not None and ty.is_list:
            return (ty.elem or t.ANY, False)
        return None
    if isinstance(parent, ast.Binary) and parent.op == "contains" and parent.right is e:
        ty = checked.types.get(id(parent.left))
        if ty is not None and ty.is_list:
            return (ty.elem or t.ANY, False)
        return (t.STRING, False) if ty == t.STRING else None
    if not isinstance(parent, ast.Binary) or parent.op not in ast.COMPARISONS:
        return None
    other = parent.left if parent.right is e else parent.right
    ty = checked.types.get(id(other))
    return None if ty is None or ty == t.ERROR else (ty, parent.op not in ("==", "!="))


def _enum_context(checked: CheckedRule, e: ast.Expr) -> t.Type | None:
    """`status` or `kind` where the typechecker reads the placeholder as one's value: compared with one
    (`status == _`, `kind in [_]`), or in its place in a list compared with a list (`[status, kind] == [error, _]`)."""
    return checked.enums.get(id(e))


def _after_its_rule(head: str) -> bool:
    """Whether the text ends past the `}` that closes its rule: at the top level, whatever is broken inside."""
    depth = 0
    closed = False
    for x in lex(head):
        if x.kind == "LBRACE":
            depth += 1
        elif x.kind == "RBRACE" and depth > 0:
            depth -= 1
            closed = closed or depth == 0
    return closed and depth == 0


def _fallbacks(head: str) -> tuple[str, ...]:
    """Shorter texts to try when a syntax error earlier in the rule hides the cursor's context:
    the cursor's line alone in an empty rule, then that line as the rest of an `expect`."""
    line = head[head.rfind("\n") + 1 :]
    opening = "rule __fluo__ {\n" + ("window 1m\n" if _WINDOWED.search(head) else "")
    item = _ITEM_START.match(line)
    return (opening + line, opening + "expect " + line[item.end() if item else 0 :], opening + "expect " + _chain(line))


def _chain(line: str) -> str:
    """The member chain the line ends with (`trace.spans.where(` of `x > trace.spans.where(`)."""
    depth = 0
    i = len(line)
    while i > 0:
        c = line[i - 1]
        if c in ")]":
            depth += 1
        elif c in "([":
            if depth == 0 and i < len(line):
                break
            depth = max(depth - 1, 0)
        elif depth == 0 and not (c.isalnum() or c in "_."):
            break
        i -= 1
    return line[i:]


def complete(
    doc: RuleDocument,
    offset: int,
    span_keys: Sequence[str],
    resource_keys: Sequence[str],
    *,
    after_space: bool = False,
    snippets: bool = True,
    skeletons: bool = True,
) -> list[lsp.CompletionItem]:
    """What may come at `offset`. `after_space`: the editor asked because a space was typed, which
    happens after nearly every word: then only a value the place calls for (an enum after `status ==`,
    a severity after `severity:`), never the list of every keyword or name. Without `snippets` (the
    client cannot expand them) every item is plain text: skeletons with their defaults filled in,
    methods by name. Without `skeletons` (the client has rule templates of its own) no rule skeleton."""
    cur = cursor_at(doc, offset)
    if _inside_comment_or_string(doc, cur):
        return _quoted_keys(doc, offset, span_keys, resource_keys)
    edit_range = doc.index.range(cur.word_start, cur.word_end)
    items = _Items(edit_range, cur.rest, snippets)
    head = short_head(doc, cur.chunk_start, cur.head).text
    if head[-1:].isdigit():
        # `1e3|`: the word is the number's exponent, and a duration takes none; a unit would replace it (`1s`)
        if not _EXPONENT.fullmatch(cur.word) and _duration_fits(doc.path, head):
            for unit in DURATION_UNITS:
                items.add(unit, lsp.CompletionItemKind.Unit, "duration unit")
        return items.out
    if _after_keyword_rule(head):
        return []  # a new rule's id: nothing to offer
    if _after_its_rule(head):
        expected: set[str] | None = {"RULE"}
        place = _Placeholder("none")
    else:
        expected = expected_at(head)
        place = _placeholder(doc.path, head)
    if place.kind == "meta_key" and expected is not None and "IDENT" not in expected:
        place = replace(place, kind="none")  # no name can come here (`where(name == "a" |)`): error recovery's guess
    at_item = expected is not None and ("RULE" in expected or "EXPECT" in expected)
    if place.kind == "none" and not at_item:
        # A syntax error before the cursor (or too much left open): try the cursor's line alone,
        # and trust only what the typechecker resolved there.
        for fallback in _fallbacks(head):
            found = _placeholder(doc.path, fallback)
            if found.kind in ("member", "name", "enum", "meta_value"):
                place = found
                break
    if after_space and place.kind not in ("meta_value", "enum"):
        return []
    if place.kind != "member" and _after_dot(doc, cur):
        return []  # `and.`, `1.`: only a member's name comes after a `.`
    # an operand may start here (a string may), else one has just ended (`name |`, where `not` is `not in`)
    at_operand = expected is None or "STRING" in expected
    if place.kind in ("meta_value", "enum"):
        pass
    elif expected is not None:
        if "RULE" in expected and skeletons:
            for label, body in _SKELETONS:
                items.snippet(label, body, "rule skeleton")
        taken = _clauses_taken(doc, cur) if "EXPECT" in expected else set()
        operand = _operand_type(doc.path, head) if {"CONTAINS", "MATCHES", "IN"} & expected else None
        for name in sorted(expected):
            word = terminal_text(name)
            if word in ("true", "false") and not place.takes_bool():  # `trace.duration >= true`: FLUO300
                continue
            if word == "not" and at_operand and not place.takes_bool():  # `before(not x)`: spans wanted
                continue
            if word is not None and operand is not None and not t.left_of(word, operand):  # `count() contains`
                continue
            if word in ("in", "not") and not at_operand and operand is not None and not _listable(operand):
                continue  # `spans in [...]`: no item of a list equals a spans (FLUO300); `not` here is `not in`
            if word in keywords() and (word not in _ITEM_KEYWORDS or "EXPECT" in expected) and word not in taken:
                items.add(word, lsp.CompletionItemKind.Keyword, "keyword")
    at_key = place.kind == "meta_key" or (expected is not None and "EXPECT" in expected and "IDENT" in expected)
    if at_key and _line_starts_at(cur.head):
        given = _meta_keys_given(doc, cur)
        for key, doc_text in META_KEYS.items():
            if key not in given:
                colon = "" if cur.rest.lstrip(" \t").startswith(":") else ": "  # `sev|: info` has its `:`
                items.add(key, lsp.CompletionItemKind.Property, "metadata", doc_text, insert=key + colon)
    if place.kind == "meta_value" and place.meta_key == "severity":
        for sev in SEVERITIES:
            items.add(sev, lsp.CompletionItemKind.EnumMember, "severity")
    elif place.kind == "meta_value" and place.meta_key == "enabled":
        for word in ("true", "false"):
            items.add(word, lsp.CompletionItemKind.Keyword, "enabled")
    elif place.kind == "member":
        _members(items, place, span_keys, resource_keys)
    elif place.kind == "enum" and place.enum is not None:
        for value in t.ENUMS[place.enum]:
            items.add(value, lsp.CompletionItemKind.EnumMember, str(place.enum))
    elif place.kind == "name" and at_operand:  # not after an operand: `where(name |)` takes no `trace`
        _names(items, place, span_keys)
    return items.out


def _line_starts_at(head: str) -> bool:
    """Whether a metadata key written at the end of `head` would start its line (or follow the rule's `{`): the
    grammar takes `severity: info` right after an expression too (`count() > 1 severity: info`), but nobody
    means one there, where an operator is what comes."""
    line = re.split(r"\r\n|\r|\n", head)[-1].strip(" \t")
    return line == "" or line.endswith("{")


def _after_dot(doc: RuleDocument, cur: Cursor) -> bool:
    """Whether the word at the cursor follows a `.` (comments and whitespace between them or not)."""
    pos = len(cur.head)
    last = None
    for x in doc.chunk_at(cur.chunk_start).analysis.lexemes:
        if x.start >= pos:
            break
        if x.kind not in ("WS", "COMMENT"):
            last = x
    return last is not None and last.kind == "DOT" and last.end <= pos


_RULE_KEY = re.compile(r"(?:\A|[\s{,-])rule:[ \t]+([\"']?)([A-Za-z0-9_]*)\Z")  # `- rule: `, `{rule: ` to the cursor
_QUOTED = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'")
_COMMENT = re.compile(r"(?:\A|[ \t])#")  # a YAML comment's start, quoted text taken out


def test_file_rule_ids(text: str, offset: int, ids: Sequence[str]) -> list[lsp.CompletionItem]:
    """In a rule test file, after `rule:` (`expect: - rule: |`): the ids of the rules its rule files define."""
    line_start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    line = text[line_start:offset]
    m = _RULE_KEY.search(line)
    if m is None or _COMMENT.search(_QUOTED.sub("", line[: m.start() + 1])):
        return []
    after = _WORD_AFTER.match(text, offset)
    start, end = offset - len(m.group(2)), after.end() if after else offset
    items = _Items(LineIndex(text).range(start, end), "", snippets=False)
    for rule_id in sorted(ids):  # quoted as `fluo test --update` writes it (`'yes'`), unless a quote is open
        items.add(rule_id, lsp.CompletionItemKind.Reference, "rule", insert=None if m.group(1) else flow_yaml(rule_id))
    return items.out


def before_lead(items: list[lsp.CompletionItem], cursor: lsp.Position, lead: str) -> list[lsp.CompletionItem]:
    """The items offered at the text's start (`complete` at offset 0), for a cursor before it, inside the byte
    order mark `lead` the client counts: an edit must hold the cursor, and text put before the mark would leave
    it mid-file, so each edit starts at the cursor and writes the mark again, then its own text."""
    for item in items:
        edit = item.text_edit
        if isinstance(edit, lsp.TextEdit):
            item.text_edit = lsp.TextEdit(
                range=lsp.Range(start=cursor, end=edit.range.end), new_text=lead + edit.new_text
            )
    return items


def _rule_at(doc: RuleDocument, cur: Cursor) -> ast.Rule | None:
    """The rule the cursor is in: the last one starting before it (an unclosed rule's span stops short)."""
    rel = cur.word_start - cur.chunk_start
    before = [r for r in doc.chunk_at(cur.chunk_start).analysis.rules if r.span.start <= rel]
    return before[-1] if before else None


def _meta_keys_given(doc: RuleDocument, cur: Cursor) -> set[str]:
    """The metadata keys the rule at the cursor already has, but for the one being typed there."""
    rule = _rule_at(doc, cur)
    rel = cur.word_start - cur.chunk_start
    return {m.key for m in rule.meta if m.key_span.start != rel} if rule is not None else set()


def _clauses_taken(doc: RuleDocument, cur: Cursor) -> set[str]:
    """Clause keywords the rule at the cursor cannot take: it has one mode (`expect`, `detect` or `when`
    with `always` / `never`, written before or after the `when`), each clause at most once, and at most one
    `window`, and none once it reads `trace`."""
    rule = _rule_at(doc, cur)
    if rule is None:
        return set()
    rel = cur.word_start - cur.chunk_start
    # the clause being typed is not taken (`exp|` may become `expect`); one that ends where the cursor's word
    # starts (`expect trace.spans.count()|`) is written, and is taken as it is after a space
    kinds = {c.kind for c in rule.clauses if not c.span.start <= rel < c.span.end}
    windowed = any(not w.span.start <= rel <= w.span.end for w in rule.windows)
    taken = {"window"} if windowed or _uses_trace(rule) else set()
    if kinds & {"expect", "detect"}:
        return taken | {"expect", "detect", "when", "always", "never"}
    if kinds:
        return taken | kinds | {"expect", "detect"}
    return taken


def _uses_trace(rule: ast.Rule) -> bool:
    """Whether the rule reads `trace`, which a rule with `window` cannot (FLUO220): one per trace."""
    return any(isinstance(e, ast.Name) and e.ident == "trace" for e, _ in expressions(rule))


def _after_keyword_rule(head: str) -> bool:
    """Whether the cursor is where a rule's id goes (right after `rule`)."""
    code = [x for x in lex(head) if x.kind not in ("WS", "COMMENT")]
    return bool(code) and code[-1].kind == "RULE" and head[-1:].isspace()


def _quoted_keys(
    doc: RuleDocument, offset: int, span_keys: Sequence[str], resource_keys: Sequence[str]
) -> list[lsp.CompletionItem]:
    """Inside `attributes["...` or `resource["...`: the keys, as the string's content. In a string not closed on
    its line, what follows the word at the cursor is code (`where(attributes["|).count()`): an item replaces
    the word alone and closes the string and the index, with `"` alone before a `]`."""
    chunk = doc.chunk_at(offset)
    rel = offset - chunk.start
    code = [x for x in chunk.analysis.lexemes if x.kind not in ("WS", "COMMENT")]
    for i, x in enumerate(code):
        if not (x.start < rel <= x.end and x.kind in ("STRING", "ERROR") and x.text[:1] in "\"'"):
            continue
        if i < 2 or code[i - 1].kind != "LSQB" or code[i - 2].text not in ("attributes", "resource"):
            return []
        closed = x.kind == "STRING" and len(x.text) > 1
        quote = x.text[0]
        close = ""
        if closed:
            end = x.end - 1
        else:  # unterminated: the rest of the line is no key, only the word at the cursor is
            word = _KEY_AFTER.match(chunk.analysis.text, rel)
            end = word.end() if word else rel
            close = quote if chunk.analysis.text.startswith("]", end) else quote + "]"
        if rel > end:
            return []
        keys = resource_keys if code[i - 2].text == "resource" else span_keys
        items = _Items(doc.index.range(chunk.start + x.start + 1, chunk.start + end), "")
        for key in keys:
            items.add(key, lsp.CompletionItemKind.Variable, "attribute key", insert=escape_string(key, quote) + close)
        return items.out
    return []


def _members(items: _Items, place: _Placeholder, span_keys: Sequence[str], resource_keys: Sequence[str]) -> None:
    """After `.`: the receiver's fields and methods; after an attribute's name (`http.`, `cart.items.`), the
    keys that continue it and then the methods of an attribute's value, since the name may be a whole key."""
    if place.attr_prefix is not None:
        keys = resource_keys if place.resource else span_keys
        prefix = place.attr_prefix + "." if place.attr_prefix else ""
        for key in keys:
            if key.startswith(prefix) and _plain_path(key[len(prefix) :]):
                items.add(key[len(prefix) :], lsp.CompletionItemKind.Variable, "attribute key")
        if place.receiver != t.ANY:  # `resource.`: a map, whose only members are its keys
            return
    if place.receiver is None:
        return
    for m in b.members_of(place.receiver).values():
        items.member(m)


def _names(items: _Items, place: _Placeholder, span_keys: Sequence[str]) -> None:
    for root in b.ROOTS.values():
        if root.name == "it" and not place.in_pred:
            continue
        if root.name in ("trace", "window") and (root.name == "window") != place.windowed:
            continue
        items.add(root.name, lsp.CompletionItemKind.Variable, str(root.type), root.doc)
    if not place.in_pred:
        return
    for name in b.SPAN_FIELD_NAMES:
        member = b.lookup(t.SPAN, name)
        if member is not None:
            items.add(name, lsp.CompletionItemKind.Field, member.signature, _member_doc(member))
    for key in span_keys:
        if key in b.SPAN_FIELD_NAMES or key.split(".")[0] in b.ROOTS or not _plain_path(key):
            quoted = f"attributes[{string_literal(key)}]"
            # A key named like an intrinsic, root or keyword (`status`, `true`) gets a label of its own.
            label = quoted if key in items.seen or key in b.SPAN_FIELD_NAMES or key in b.ROOTS else key
            items.add(label, lsp.CompletionItemKind.Variable, "attribute key", insert=quoted)
        else:
            items.add(key, lsp.CompletionItemKind.Variable, "attribute key")


def _plain_path(key: str) -> bool:
    """Whether the key can be written bare, as dotted names (`http.method`), none of them a keyword."""
    return all(_IDENT.fullmatch(part) and part not in keywords() for part in key.split("."))


def _member_doc(m: b.Member) -> str:
    return m.doc + (f"\n\nExample: `{m.example}`" if m.example else "")


_TABSTOP = re.compile(r"\$\{\d+:([^${}]*)\}")
_CHOICE = re.compile(r"\$\{\d+\|([^,|]*)[^|]*\|\}")
_BARE_TABSTOP = re.compile(r"\$\d+")


def plain_text(snippet: str) -> str:
    """A snippet as the text it expands to when every placeholder keeps its default (and choices their first)."""
    text = _CHOICE.sub(r"\1", snippet)
    while True:
        inner = _TABSTOP.sub(r"\1", text)  # innermost first: placeholders nest
        if inner == text:
            return _BARE_TABSTOP.sub("", text)
        text = inner


class _Items:
    def __init__(self, edit_range: lsp.Range, rest: str, snippets: bool = True) -> None:
        self.range = edit_range
        self.rest = rest
        self.snippets = snippets
        self.out: list[lsp.CompletionItem] = []
        self.seen: set[str] = set()

    def add(
        self,
        label: str,
        kind: lsp.CompletionItemKind,
        detail: str,
        doc: str = "",
        insert: str | None = None,
        snippet: bool = False,
    ) -> None:
        if label in self.seen:
            return
        self.seen.add(label)
        if snippet and not self.snippets:
            insert, snippet = plain_text(insert if insert is not None else label), False
        self.out.append(
            lsp.CompletionItem(
                label=label,
                kind=kind,
                detail=detail,
                documentation=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=doc) if doc else None,
                text_edit=lsp.TextEdit(range=self.range, new_text=insert if insert is not None else label),
                insert_text_format=lsp.InsertTextFormat.Snippet if snippet else lsp.InsertTextFormat.PlainText,
                filter_text=label,
                sort_text=f"{len(self.out):04d}",
            )
        )

    def snippet(self, label: str, body: str, detail: str) -> None:
        self.add(label, lsp.CompletionItemKind.Snippet, detail, f"```fluo\n{body}\n```", insert=body, snippet=True)

    def member(self, m: b.Member) -> None:
        if m.kind == "field":
            self.add(m.name, lsp.CompletionItemKind.Field, m.signature, _member_doc(m))
            return
        if self.rest.lstrip().startswith("("):
            insert, snippet = m.name, False
        elif m.params and not self.snippets:  # arguments it needs are the user's to type, after the `(`
            insert, snippet = f"{m.name}()" if all(p.optional for p in m.params) else m.name, False
        elif m.params:
            insert, snippet = f"{m.name}($1)", True
        else:
            insert, snippet = f"{m.name}()", False
        self.add(m.name, lsp.CompletionItemKind.Method, m.signature, _member_doc(m), insert=insert, snippet=snippet)


# ---------------------------------------------------------------------------
# Signature help


def signature_help(doc: RuleDocument, offset: int, *, none_active: bool = False) -> lsp.SignatureHelp | None:
    """The signature of the method whose parentheses hold the cursor, with the argument it is in.

    A list, an index or parentheses inside an argument (`where(name in ['a', |])`) are part of that
    argument: their commas are not the call's. A `{` ends the search (a rule's body, `when { ... }`).
    `none_active`: the client takes `activeParameter: null` for "no parameter" (see `_active_parameter`).
    """
    chunk = doc.chunk_at(offset)
    rel = offset - chunk.start
    depth = 0
    commas = 0
    open_at: int | None = None
    lexemes = [x for x in chunk.analysis.lexemes if x.end <= rel and x.kind not in ("WS", "COMMENT")]
    for i in range(len(lexemes) - 1, -1, -1):
        x = lexemes[i]
        if x.kind in ("RPAR", "RSQB", "RBRACE"):
            depth += 1
        elif x.kind in ("LPAR", "LSQB", "LBRACE"):
            if depth > 0:
                depth -= 1
            elif x.kind == "LPAR" and i >= 2 and lexemes[i - 1].kind == "IDENT" and lexemes[i - 2].kind == "DOT":
                open_at = i
                break
            elif x.kind == "LBRACE":
                break
            else:  # the cursor is in a list, an index or parentheses: the argument around them is the call's
                commas = 0
        elif x.kind == "COMMA" and depth == 0:
            commas += 1
    if open_at is None:
        return None
    name = lexemes[open_at - 1]
    members = _called_in(chunk.analysis.checked, name.start)
    if not members:  # not in the rule as it parses (unfinished): check the text up to the cursor
        head = short_head(doc, chunk.start, chunk.analysis.text[:rel])
        members = _called(doc.path, head.text, head.offset(name.start), name.text)
    if not members:
        return None
    sigs = []
    for m in members:
        active = _active_parameter(len(m.params), commas, none_active=none_active)
        if active != _PAST:
            sigs.append(_signature(m, active))
    if not sigs:
        return None
    # the first signature that has a parameter where the cursor is, else the first
    chosen = next((i for i, sig in enumerate(sigs) if sig.active_parameter is not None), 0)
    return lsp.SignatureHelp(signatures=sigs, active_signature=chosen, active_parameter=sigs[chosen].active_parameter)


_PAST = -1
"""`_active_parameter`'s answer when a signature is not to be shown at all."""


def _active_parameter(params: int, commas: int, *, none_active: bool) -> int | None:
    """The index of the parameter the cursor is in, after `commas` commas of a call to a method of `params`
    parameters; None for none (a client that takes `null`), `_PAST` for a signature left out.

    Past the last parameter (`starts_with('a', |)`) no parameter is the cursor's. LSP 3.17 has no way to say
    so: an index out of range, or none given, means the first parameter, which would mark `prefix` as the
    argument being written. LSP 3.18 lets a client that declares `noActiveParameterSupport` take `null` for
    "none"; any other client gets no such signature (and no signature help if none is left), rather than one
    that points at the wrong parameter. A method of no parameters shows with the cursor in its parentheses
    (an index there is ignored), and is past them after a comma.
    """
    if commas < max(params, 1):
        return commas
    return None if none_active else _PAST


def _called(path: str, head: str, method_start: int, method: str) -> list[b.Member]:
    found = _called_in(api.analyze([(path, with_placeholder(head))]).rules, method_start)
    return found or [m for m in b.MEMBERS if m.name == method and m.kind == "method"]


def _called_in(rules: Sequence[CheckedRule], method_start: int) -> list[b.Member]:
    """The method the typechecker resolved for the call whose name starts at `method_start`, if any."""
    for checked in rules:
        for e, _ in expressions(checked.rule):
            if isinstance(e, ast.Call) and e.method_span.start == method_start:
                ref = checked.refs.get(id(e))
                if isinstance(ref, MemberRef):
                    return [ref.member]
    return []


def _signature(m: b.Member, active: int | None) -> lsp.SignatureInformation:
    label = m.signature
    params = []
    inner_start = label.index("(") + 1
    inner = label[inner_start : label.rindex(")")]
    pos = inner_start
    for part in inner.split(", ") if inner else []:
        params.append(lsp.ParameterInformation(label=(pos, pos + len(part))))
        pos += len(part) + 2
    return lsp.SignatureInformation(
        label=label,
        documentation=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=_member_doc(m)),
        parameters=params,
        # always given: lsprotocol sends an unset one as `null`, which a 3.18 client reads as "no parameter"
        active_parameter=active,
    )
