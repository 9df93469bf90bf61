"""OData query options: `$filter` (parsed by odata-query, evaluated over dict rows), `$select`,
`$orderby`, `$expand`, `$top`/`$skip`/`$count`.

Why dicts and not odata-query's SQLAlchemy visitor: the store is a set of dicts with
hand-kept indexes (ID, Sku, ProfileID, ...), so the parsed AST is compiled once into Python
closures and evaluated over candidate rows; a small planner turns top-level equality
conjuncts on indexed properties into index lookups, so `Sku eq 'X' and ProfileID eq N`
never scans the catalog.

Semantics chosen (where the reference is UNCERTAIN the recommended reading is used):

- String comparisons (`eq`, `ne`, ordering, `contains`/`startswith`/`endswith`) are
  case-insensitive, like CA's SQL Server collation; the reference (§3.2, UNCERTAIN) says
  `Sku eq` is at least case-insensitive, so clients must post-filter for the exact SKU.
- Keywords are accepted in any case (`AND`, `OR`): odata-query's lexer is case-insensitive,
  and SW's upper-case filters are reported to work (§2.4).
- Date literals may be date-only (`2016-03-02`, midnight UTC) or full date-times; naive
  date-times are UTC. Comparisons with `null` follow SQL: only `eq null`/`ne null` match.
- An enum literal must name a member (case-insensitively), else 400, like OData.
- Errors use the wording of ASP.NET Web API OData, which CA runs on.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from odata_query import ast
from odata_query import exceptions as oq_exc
from odata_query.grammar import ODataLexer, ODataParser

from .errors import ApiError
from .model import BOOL, DATETIME, DECIMAL, ENTITY_TYPES, INT64, STRING, EntityType, FieldType

Row = dict[str, Any]
Env = dict[str, Row] | None
Fn = Callable[[Row, Env], Any]
Lookup = Callable[[str, Any], "set[int] | None"]


def _unknown_property(name: str, etype: EntityType) -> ApiError:
    return ApiError(
        400, f"Could not find a property named '{name}' on type '{etype.qualified_name}'."
    )


@dataclass(frozen=True)
class _Typed:
    """A compiled sub-expression: its evaluator, its type (None for `null`)."""

    fn: Fn
    ftype: FieldType | None
    is_literal: bool = False
    literal: Any = None


_CATEGORY = {
    "int": "number",
    "decimal": "number",
    "string": "string",
    "enum": "string",
    "datetime": "datetime",
    "bool": "bool",
}
_OP_NAMES = {
    ast.Eq: "Equal",
    ast.NotEq: "NotEqual",
    ast.Gt: "GreaterThan",
    ast.GtE: "GreaterThanOrEqual",
    ast.Lt: "LessThan",
    ast.LtE: "LessThanOrEqual",
    ast.In: "In",
}


def _norm(value: Any) -> Any:
    """Comparison key: strings case-folded (case-insensitive collation)."""
    return value.lower() if isinstance(value, str) else value


def _eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return _norm(a) == _norm(b)


_ORDER_OPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
}


class _Compiler:
    """Compiles an odata-query AST into closures over rows, checking names and types."""

    def __init__(self, etype: EntityType, text: str) -> None:
        self.root = etype
        self.text = text
        self.vars: dict[str, EntityType] = {}

    def unsupported(self, what: str) -> ApiError:
        return ApiError(400, f"{what} is not supported in $filter by this service.")

    def compile_bool(self, node: ast._Node) -> Fn:
        typed = self.compile(node)
        if typed.ftype is None or typed.ftype.kind != "bool":
            raise ApiError(400, "The $filter expression must evaluate to a single boolean value.")
        return typed.fn

    def compile(self, node: ast._Node) -> _Typed:
        method = getattr(self, "_c_" + type(node).__name__, None)
        if method is None:
            raise self.unsupported(f"The expression '{type(node).__name__}'")
        return method(node)

    # -- names -------------------------------------------------------------------------
    def _c_Identifier(self, node: ast.Identifier) -> _Typed:
        name = node.name
        if node.namespace:
            raise _unknown_property(node.full_name(), self.root)
        if name in self.vars:
            raise self.unsupported(f"Using the lambda variable '{name}' on its own")
        if name in self.root.navigation:
            raise self.unsupported(f"The collection '{name}' outside any()/all()")
        ftype = self.root.fields.get(name)
        if ftype is None:
            raise _unknown_property(name, self.root)

        def get(row: Row, env: Env) -> Any:
            return row.get(name)

        return _Typed(get, ftype)

    def _c_Attribute(self, node: ast.Attribute) -> _Typed:
        owner = node.owner
        if not isinstance(owner, ast.Identifier) or owner.name not in self.vars:
            raise self.unsupported("A property path")
        var, attr = owner.name, node.attr
        etype = self.vars[var]
        ftype = etype.fields.get(attr)
        if ftype is None:
            raise _unknown_property(attr, etype)

        def get(row: Row, env: Env) -> Any:
            assert env is not None
            return env[var].get(attr)

        return _Typed(get, ftype)

    # -- literals ------------------------------------------------------------------------
    @staticmethod
    def _literal(value: Any, ftype: FieldType | None) -> _Typed:
        return _Typed(lambda row, env: value, ftype, True, value)

    def _c_Null(self, node: ast.Null) -> _Typed:
        return self._literal(None, None)

    def _c_Integer(self, node: ast.Integer) -> _Typed:
        return self._literal(int(node.val), INT64)

    def _c_Float(self, node: ast.Float) -> _Typed:
        return self._literal(float(node.val), DECIMAL)

    def _c_Boolean(self, node: ast.Boolean) -> _Typed:
        return self._literal(node.py_val, BOOL)

    def _c_String(self, node: ast.String) -> _Typed:
        return self._literal(node.val, STRING)

    def _c_Date(self, node: ast.Date) -> _Typed:
        try:
            day = dt.date.fromisoformat(node.val)
        except ValueError:
            raise ApiError(400, f"The date literal '{node.val}' is not valid.") from None
        return self._literal(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), DATETIME)

    def _c_DateTime(self, node: ast.DateTime) -> _Typed:
        try:
            value = node.py_val
        except ValueError:
            raise ApiError(400, f"The date-time literal '{node.val}' is not valid.") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return self._literal(value, DATETIME)

    def _c_List(self, node: ast.List) -> _Typed:
        raise self.unsupported("A list outside the 'in' operator")

    # -- operators -----------------------------------------------------------------------
    def _check_enum_literal(self, field_side: _Typed, literal_side: _Typed) -> _Typed:
        """Map a string literal compared with an enum property onto the member name."""
        ftype = field_side.ftype
        if (
            ftype is not None
            and ftype.kind == "enum"
            and literal_side.is_literal
            and isinstance(literal_side.literal, str)
        ):
            for member in ftype.enum_values:
                if member.lower() == literal_side.literal.lower():
                    return self._literal(member, ftype)
            raise ApiError(
                400,
                f"The string '{literal_side.literal}' is not a valid enumeration type "
                f"constant of '{ftype.edm}'.",
            )
        return literal_side

    def _check_types(self, left: _Typed, right: _Typed, op: str) -> None:
        if left.ftype is None or right.ftype is None:
            return
        if _CATEGORY[left.ftype.kind] != _CATEGORY[right.ftype.kind]:
            raise ApiError(
                400,
                "A binary operator with incompatible types was detected. Found operand "
                f"types '{left.ftype.edm}' and '{right.ftype.edm}' for operator kind '{op}'.",
            )

    def _c_Compare(self, node: ast.Compare) -> _Typed:
        op_type = type(node.comparator)
        op_name = _OP_NAMES.get(op_type, op_type.__name__)
        left = self.compile(node.left)
        if op_type is ast.In:
            if not isinstance(node.right, ast.List):
                raise self.unsupported("'in' without a literal list")
            items = [self._check_enum_literal(left, self.compile(v)) for v in node.right.val]
            for item in items:
                if not item.is_literal:
                    raise self.unsupported("'in' with non-literal members")
                self._check_types(left, item, op_name)
            keys = {_norm(item.literal) for item in items}
            lf = left.fn

            def in_(row: Row, env: Env) -> bool:
                value = lf(row, env)
                return value is not None and _norm(value) in keys

            return _Typed(in_, BOOL)
        right = self.compile(node.right)
        right = self._check_enum_literal(left, right)
        left = self._check_enum_literal(right, left)
        self._check_types(left, right, op_name)
        lf, rf = left.fn, right.fn
        if op_type in (ast.Eq, ast.NotEq):
            negate = op_type is ast.NotEq
            if right.is_literal and right.literal is not None:
                key = _norm(right.literal)

                def eq_lit(row: Row, env: Env) -> bool:
                    value = lf(row, env)
                    hit = value is not None and _norm(value) == key
                    return hit != negate

                return _Typed(eq_lit, BOOL)

            def eq(row: Row, env: Env) -> bool:
                return _eq(lf(row, env), rf(row, env)) != negate

            return _Typed(eq, BOOL)
        cmp = _ORDER_OPS[op_type]
        if left.ftype is not None and left.ftype.kind == "bool":
            raise ApiError(400, f"The operator '{op_name}' cannot be applied to Edm.Boolean.")

        def order(row: Row, env: Env) -> bool:
            a, b = lf(row, env), rf(row, env)
            if a is None or b is None:
                return False
            return cmp(_norm(a), _norm(b))

        return _Typed(order, BOOL)

    def _c_BoolOp(self, node: ast.BoolOp) -> _Typed:
        name = "And" if isinstance(node.op, ast.And) else "Or"
        left, right = self.compile(node.left), self.compile(node.right)
        for side in (left, right):
            if side.ftype is None or side.ftype.kind != "bool":
                raise ApiError(
                    400, f"The operands of the binary operator '{name}' must be boolean."
                )
        lf, rf = left.fn, right.fn
        if name == "And":
            return _Typed(lambda row, env: bool(lf(row, env)) and bool(rf(row, env)), BOOL)
        return _Typed(lambda row, env: bool(lf(row, env)) or bool(rf(row, env)), BOOL)

    def _c_UnaryOp(self, node: ast.UnaryOp) -> _Typed:
        operand = self.compile(node.operand)
        of = operand.fn
        if isinstance(node.op, ast.Not):
            if operand.ftype is None or operand.ftype.kind != "bool":
                raise ApiError(400, "The operand of 'not' must be boolean.")

            def not_(row: Row, env: Env) -> Any:
                value = of(row, env)
                return None if value is None else not value

            return _Typed(not_, BOOL)
        if operand.ftype is None or _CATEGORY[operand.ftype.kind] != "number":
            raise ApiError(400, "The operand of '-' must be numeric.")
        if operand.is_literal:
            return self._literal(-operand.literal, operand.ftype)
        return _Typed(
            lambda row, env: None if of(row, env) is None else -of(row, env), operand.ftype
        )

    def _c_BinOp(self, node: ast.BinOp) -> _Typed:
        left, right = self.compile(node.left), self.compile(node.right)
        for side in (left, right):
            if side.ftype is not None and _CATEGORY[side.ftype.kind] != "number":
                raise ApiError(400, "Arithmetic operators need numeric operands.")
        ops: dict[type, Callable[[Any, Any], Any]] = {
            ast.Add: lambda a, b: a + b,
            ast.Sub: lambda a, b: a - b,
            ast.Mult: lambda a, b: a * b,
            ast.Div: lambda a, b: a / b if b else None,
            ast.Mod: lambda a, b: a % b if b else None,
        }
        func = ops[type(node.op)]
        lf, rf = left.fn, right.fn

        def arith(row: Row, env: Env) -> Any:
            a, b = lf(row, env), rf(row, env)
            return None if a is None or b is None else func(a, b)

        return _Typed(arith, DECIMAL)

    def _c_Call(self, node: ast.Call) -> _Typed:
        name = node.func.full_name()
        args = [self.compile(a) for a in node.args]
        spec = _FUNCTIONS.get(name)
        if spec is None:
            raise ApiError(400, f"The function '{name}' is not supported by this service.")
        arg_kinds, result, impl = spec
        for arg, kind in zip(args, arg_kinds, strict=False):
            if arg.ftype is not None and _CATEGORY[arg.ftype.kind] != kind:
                raise ApiError(
                    400,
                    f"The function '{name}' does not accept an argument of type '{arg.ftype.edm}'.",
                )
        fns = [a.fn for a in args]

        def call(row: Row, env: Env) -> Any:
            values = [f(row, env) for f in fns]
            if any(v is None for v in values):
                return None
            return impl(*values)

        return _Typed(call, result)

    def _c_CollectionLambda(self, node: ast.CollectionLambda) -> _Typed:
        owner = node.owner
        if not isinstance(owner, ast.Identifier) or owner.name not in self.root.navigation:
            name = owner.name if isinstance(owner, ast.Identifier) else str(owner)
            raise _unknown_property(name, self.root)
        nav = self.root.navigation[owner.name]
        getter = nav.getter
        is_any = isinstance(node.operator, ast.Any)
        if node.lambda_ is None:
            if not is_any:
                raise self.unsupported("all() without a lambda")
            return _Typed(lambda row, env: bool(getter(row)), BOOL)
        var = node.lambda_.identifier.name
        self.vars[var] = ENTITY_TYPES[nav.target]
        try:
            inner = self.compile_bool(node.lambda_.expression)
        finally:
            del self.vars[var]
        quantifier = any if is_any else all

        def lam(row: Row, env: Env) -> bool:
            scope = dict(env or {})
            results = []
            for item in getter(row):
                scope[var] = item
                results.append(bool(inner(row, scope)))
            return quantifier(results)

        return _Typed(lam, BOOL)


def _substring(s: str, start: int, length: int | None = None) -> str:
    return s[start:] if length is None else s[start : start + length]


# name -> (argument categories, result type, implementation)
_FUNCTIONS: dict[str, tuple[tuple[str, ...], FieldType, Callable[..., Any]]] = {
    "contains": (("string", "string"), BOOL, lambda a, b: b.lower() in a.lower()),
    "startswith": (("string", "string"), BOOL, lambda a, b: a.lower().startswith(b.lower())),
    "endswith": (("string", "string"), BOOL, lambda a, b: a.lower().endswith(b.lower())),
    "tolower": (("string",), STRING, str.lower),
    "toupper": (("string",), STRING, str.upper),
    "trim": (("string",), STRING, str.strip),
    "length": (("string",), INT64, len),
    "indexof": (("string", "string"), INT64, lambda a, b: a.lower().find(b.lower())),
    "concat": (("string", "string"), STRING, lambda a, b: a + b),
    "substring": (("string", "number", "number"), STRING, _substring),
    "year": (("datetime",), INT64, lambda d: d.year),
    "month": (("datetime",), INT64, lambda d: d.month),
    "day": (("datetime",), INT64, lambda d: d.day),
    "hour": (("datetime",), INT64, lambda d: d.hour),
    "minute": (("datetime",), INT64, lambda d: d.minute),
    "second": (("datetime",), INT64, lambda d: d.second),
    "floor": (("number",), DECIMAL, math.floor),
    "ceiling": (("number",), DECIMAL, math.ceil),
    "round": (("number",), DECIMAL, round),
    "now": ((), DATETIME, lambda: dt.datetime.now(dt.UTC)),
}


def _literal_value(node: ast._Node) -> tuple[bool, Any]:
    """(True, python value) for an Integer/String literal usable as an index key."""
    if isinstance(node, ast.Integer):
        return True, int(node.val)
    if isinstance(node, ast.String):
        return True, node.val
    return False, None


def _eq_parts(node: ast._Node) -> tuple[str, list[Any]] | None:
    """`Field eq literal`, `literal eq Field` or `Field in (...)` -> (field, values)."""
    if not isinstance(node, ast.Compare):
        return None
    if isinstance(node.comparator, ast.Eq):
        for name_node, lit_node in ((node.left, node.right), (node.right, node.left)):
            if isinstance(name_node, ast.Identifier) and not name_node.namespace:
                ok, value = _literal_value(lit_node)
                if ok:
                    return name_node.name, [value]
        return None
    if (
        isinstance(node.comparator, ast.In)
        and isinstance(node.left, ast.Identifier)
        and isinstance(node.right, ast.List)
    ):
        values = []
        for item in node.right.val:
            ok, value = _literal_value(item)
            if not ok:
                return None
            values.append(value)
        return node.left.name, values
    return None


@dataclass
class CompiledFilter:
    """A checked `$filter`: a row predicate plus an index planner."""

    text: str
    node: ast._Node
    etype: EntityType
    predicate: Callable[[Row, Env], Any]

    def matches(self, row: Row) -> bool:
        """Whether a row satisfies the filter."""
        return bool(self.predicate(row, None))

    def plan(self, lookup: Lookup) -> tuple[set[int] | None, bool]:
        """Candidate row keys from indexes, and whether they are exactly the matches.

        `lookup(field, value)` answers a set of keys, or None when the field has no index.
        (None, False) means "no index helps: scan everything".
        """
        return self._plan(self.node, lookup)

    def _plan(self, node: ast._Node, lookup: Lookup) -> tuple[set[int] | None, bool]:
        parts = _eq_parts(node)
        if parts is not None:
            name, values = parts
            ftype = self.etype.fields.get(name)
            if ftype is None:
                return None, False
            result: set[int] = set()
            for value in values:
                # Only index on literals of the field's own kind (a Sku never equals 5).
                if (ftype.kind == "int") != isinstance(value, int):
                    return None, False
                hits = lookup(name, _norm(value))
                if hits is None:
                    return None, False
                result |= hits
            return result, True
        if isinstance(node, ast.BoolOp):
            left, lexact = self._plan(node.left, lookup)
            right, rexact = self._plan(node.right, lookup)
            if isinstance(node.op, ast.And):
                if left is None and right is None:
                    return None, False
                if left is None:
                    return set(right or ()), False
                if right is None:
                    return set(left), False
                return left & right, lexact and rexact
            if left is None or right is None:
                return None, False
            return left | right, lexact and rexact
        return None, False

    def pinned(self, name: str) -> list[Any]:
        """Values `v` of top-level conjuncts `name eq v` (e.g. the ProfileID a query targets)."""
        found: list[Any] = []

        def walk(node: ast._Node) -> None:
            if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
                walk(node.left)
                walk(node.right)
                return
            parts = _eq_parts(node)
            if parts is not None and parts[0] == name and len(parts[1]) == 1:
                found.append(parts[1][0])

        walk(self.node)
        return found


@functools.lru_cache(maxsize=1024)
def _compile_cached(type_name: str, text: str) -> CompiledFilter:
    etype = ENTITY_TYPES[type_name]
    try:
        # A fresh lexer/parser per call: SLY parsers keep state while parsing.
        node = ODataParser().parse(ODataLexer().tokenize(text))
    except oq_exc.ParsingException as exc:
        position = exc.token.index if exc.token is not None else len(text)
        raise ApiError(400, f"Syntax error at position {position} in '{text}'.") from None
    except oq_exc.TokenizingException as exc:
        raise ApiError(400, f"Syntax error at position {exc.token.index} in '{text}'.") from None
    except oq_exc.UnknownFunctionException as exc:
        raise ApiError(400, f"Unknown function '{exc.function_name}'.") from None
    except oq_exc.ODataException as exc:
        raise ApiError(400, f"The query specified in the URI is not valid. {exc}") from None
    if node is None:
        raise ApiError(400, f"Syntax error at position 0 in '{text}'.")
    predicate = _Compiler(etype, text).compile_bool(node)
    return CompiledFilter(text, node, etype, predicate)


def compile_filter(text: str, etype: EntityType) -> CompiledFilter:
    """Parse and check a `$filter`; raise ApiError(400) naming the problem."""
    text = text.strip()
    if not text:
        raise ApiError(400, "The $filter query option must not be empty.")
    return _compile_cached(etype.name, text)


def parse_select(text: str | None, etype: EntityType) -> list[str] | None:
    """`$select=A,B` -> ["A", "B"]; None for all properties. Unknown names -> 400."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or "*" in names:
        return None
    for name in names:
        if name not in etype.fields and name not in etype.navigation:
            raise _unknown_property(name, etype)
    return list(dict.fromkeys(names))


def parse_orderby(text: str | None, etype: EntityType) -> list[tuple[str, bool]]:
    """`$orderby=A desc,B` -> [("A", True), ("B", False)]."""
    if text is None or not text.strip():
        return []
    result: list[tuple[str, bool]] = []
    for clause in text.split(","):
        words = clause.split()
        if not words or len(words) > 2:
            raise ApiError(400, f"The $orderby clause '{clause.strip()}' is not valid.")
        name = words[0]
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise ApiError(400, f"The $orderby direction '{words[1]}' is not valid.")
        if name not in etype.fields:
            raise _unknown_property(name, etype)
        result.append((name, direction == "desc"))
    return result


@dataclass
class ExpandOption:
    """One `$expand` entry with its nested `$select`/`$expand`."""

    select: list[str] | None = None
    expand: dict[str, ExpandOption] = field(default_factory=dict)


def _split_top(text: str, sep: str) -> list[str]:
    """Split at separators that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ApiError(400, f"Unbalanced parentheses in '{text}'.")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ApiError(400, f"Unbalanced parentheses in '{text}'.")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_expand(text: str | None, etype: EntityType) -> dict[str, ExpandOption]:
    """`$expand=Items($expand=Promotions),Fulfillments` -> {name: ExpandOption}."""
    if text is None or not text.strip():
        return {}
    result: dict[str, ExpandOption] = {}
    for item in _split_top(text, ","):
        name, _, rest = item.partition("(")
        name = name.strip()
        if name == "*":
            for nav in etype.navigation:
                result.setdefault(nav, ExpandOption())
            continue
        if name not in etype.navigation:
            raise _unknown_property(name, etype)
        target = ENTITY_TYPES[etype.navigation[name].target]
        option = ExpandOption()
        if rest:
            if not rest.endswith(")"):
                raise ApiError(400, f"The $expand clause '{item}' is not valid.")
            for opt in _split_top(rest[:-1], ";"):
                key, eq, value = opt.partition("=")
                key = key.strip()
                if not eq:
                    raise ApiError(400, f"The $expand option '{opt}' is not valid.")
                if key == "$expand":
                    option.expand = parse_expand(value, target)
                elif key == "$select":
                    option.select = parse_select(value, target)
                else:
                    raise ApiError(
                        400, f"The query option '{key}' inside $expand is not supported."
                    )
        result[name] = option
    return result


def parse_int_option(name: str, text: str | None) -> int | None:
    """`$top`/`$skip`: a non-negative integer, else 400."""
    if text is None:
        return None
    text = text.strip()
    if not text.isdigit():
        raise ApiError(
            400,
            f"Invalid value '{text}' for {name} query option found. "
            f"The {name} query option requires a non-negative integer value.",
        )
    return int(text)


def parse_bool_option(name: str, text: str | None) -> bool:
    """`$count=true|false`."""
    if text is None:
        return False
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ApiError(400, f"'{text}' is not a valid value for {name}; use true or false.")
    return lowered == "true"


def _sort_key(value: Any) -> tuple[bool, Any]:
    # Nulls sort lowest (SQL Server): first ascending, last descending.
    return (value is not None, _norm(value) if value is not None else 0)


def sort_rows(rows: list[Row], orderby: list[tuple[str, bool]]) -> list[Row]:
    """Sort rows by `$orderby` clauses (stable; rows arrive in key order)."""
    for name, desc in reversed(orderby):
        rows.sort(key=lambda r, n=name: _sort_key(r.get(n)), reverse=desc)
    return rows
