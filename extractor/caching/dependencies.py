"""What a decorated function's answer depends on besides its arguments.

The key must change whenever the request the function would send changes. The
request is shaped by the function's code and by everything that code reads:
helpers, prompts kept in modules, few-shot constants, closure variables, the
Instructor client and its mode, the response model's validators, the
environment. This module follows those names through the bytecode, within the
user's own code (never into the standard library or installed packages), and
splits what it finds in two:

- static: fixed for the life of the process (code, module constants, clients,
  closure cells, classes). Fingerprinted once, at the function's first call,
  when every module it reads has finished importing; it joins the key's fixed
  prefix, so a hit pays nothing for it.
- dynamic: may change between two calls of one process (environment
  variables, attributes of settings objects, attributes of `self` when a
  `key=` function leaves `self` out). Read at every call, and only for the
  functions that have any.

README's "What the key follows" lists what this sees and what it cannot.
"""

from __future__ import annotations

import ast
import dis
import enum
import hashlib
import inspect
import logging
import os
import re
import sys
import sysconfig
import textwrap
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from pydantic import BaseModel

logger = logging.getLogger("extractor.caching")

# Beyond this many functions and classes the walk stops (and says so in the
# fingerprint): a function that reaches that much of a project is keyed on
# what was seen, and `version=` is the documented way to cover the rest.
MAX_VISITED = 400

_LIBRARY_ROOTS = tuple(
    os.path.join(os.path.realpath(path), "")
    for path in {
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["platstdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
    }
)
# The caching library itself is not part of anyone's request.
_OWN_PACKAGE = __name__.rpartition(".")[0]
_ENVIRONMENT_READERS = {id(os.environ), id(os.getenv), id(os.environ.get)}
_ATTRIBUTE_OPS = {"LOAD_ATTR", "LOAD_METHOD"}
_PLAIN_SCALARS = (str, int, float, bool, type(None))
# Read at call time but never part of the request: credentials (a rotated key
# must not empty the cache) and transport settings (timeouts, retries).
_NOT_REQUEST = re.compile(
    r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|TIMEOUT|RETRIES|RETRY", re.IGNORECASE
)


@dataclass
class Dependencies:
    """The outcome of a walk: one static fingerprint and the per-call readers."""

    fingerprint: str
    # Names of environment variables the code may read (every string constant
    # of a code object that touches os.environ or os.getenv: reading a name
    # that is not one costs a dict lookup and always gives None).
    environment: tuple[str, ...] = ()
    # (object, attribute) pairs read off settings-like objects.
    attributes: tuple[tuple[Any, str], ...] = ()
    # Attributes read off the first argument (`self`) of a method.
    self_attributes: tuple[str, ...] = ()
    described: list[str] = field(default_factory=list)

    @property
    def dynamic(self) -> bool:
        return bool(self.environment or self.attributes or self.self_attributes)

    def reader(self) -> Callable[[tuple[Any, ...]], bytes] | None:
        """A function of the call's positional arguments giving the dynamic part."""
        if not self.dynamic:
            return None
        environ = os.environ
        names = self.environment
        attributes = self.attributes
        self_attributes = self.self_attributes

        def read(args: tuple[Any, ...]) -> bytes:
            values: list[Any] = [environ.get(name) for name in names]
            values.extend(_plain(getattr(obj, name, None)) for obj, name in attributes)
            if self_attributes and args:
                instance = args[0]
                values.extend(
                    _plain(getattr(instance, name, None), skip_methods=True)
                    for name in self_attributes
                )
            return orjson.dumps(values, default=_opaque)

        return read


def follow(
    func: Callable[..., Any],
    *,
    response_model: type[BaseModel] | None = None,
    method_of: type | None = None,
    read_self_state: bool = False,
) -> Dependencies:
    """Walk what `func` reads.

    response_model: its validators and configuration join the fingerprint (the
        JSON schema is the schema fingerprint's part).
    method_of: the class of `self` for a method: helpers called as
        `self.helper()` are followed like any helper.
    read_self_state: read the attributes the method reads off `self` at every
        call (when a `key=` function leaves `self` out of the arguments).
    """
    # One walk at a time in a process: CPython 3.11's ast.parse is not safe to
    # run in two threads at once (it can raise SystemError "AST constructor
    # recursion depth mismatch"), and a walk that failed in one thread would key
    # that function differently from the same function elsewhere. A walk runs
    # once per function and process, so the lock costs nothing that matters.
    with _WALK_LOCK:
        return _follow(
            func,
            response_model=response_model,
            method_of=method_of,
            read_self_state=read_self_state,
        )


_WALK_LOCK = threading.Lock()


def _follow(
    func: Callable[..., Any],
    *,
    response_model: type[BaseModel] | None,
    method_of: type | None,
    read_self_state: bool,
) -> Dependencies:
    walk = _Walk()
    parts: list[Any] = [walk.function(func, root=True, on_self=method_of is not None)]
    if method_of is not None:
        parts.append(walk.methods_called_on_self(method_of))
    if response_model is not None:
        parts.append(walk.model(response_model))
    if walk.truncated:
        parts.append(["truncated", MAX_VISITED])
    fingerprint = hashlib.sha256(orjson.dumps(parts, default=_opaque)).hexdigest()
    return Dependencies(
        fingerprint=fingerprint,
        environment=tuple(sorted(walk.environment)),
        attributes=tuple(walk.attributes.values()),
        self_attributes=tuple(sorted(walk.self_attributes)) if read_self_state else (),
        described=walk.described,
    )


def own_code_fingerprint(func: Callable[..., Any]) -> str:
    """The function's own code alone: the fallback when the walk fails."""
    func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    source = normalised_source(func, without_decorators=True)
    part = source if source is not None else (_bytecode_summary(code) if code else repr(func))
    return hashlib.sha256(orjson.dumps(["own code only", part])).hexdigest()


def normalised_source(obj: Any, *, without_decorators: bool = False) -> str | None:
    """Source of a function or class without comments or docstrings.

    The decorated function's own decorators are left out (a new `ttl=` must not
    miss); a helper's are kept (they can change what it returns).
    """
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None
    try:
        tree = _parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            _drop_docstring(node)
    first = tree.body[0] if tree.body else None
    if isinstance(first, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        if without_decorators:
            first.decorator_list = []
        return ast.unparse(first)
    # A lambda's source is the statement that holds it (`build = lambda t: ...`).
    return ast.unparse(tree)


def _parse(source: str) -> ast.Module:
    # CPython 3.11's parser can fail spuriously with SystemError ("AST
    # constructor recursion depth mismatch") while another thread parses or
    # compiles (user code may): the same source parses on a second try.
    for _attempt in range(3):
        try:
            return ast.parse(source)
        except SystemError:
            continue
    return ast.parse(source)


def _drop_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        node.body = body[1:] or [ast.Pass()]


def is_user_code(obj: Any) -> bool:
    """True for functions and classes defined in the project, not in a library."""
    module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str):
        return False
    return _is_user_module(module_name)


def _is_user_module(module_name: str) -> bool:
    if module_name == _OWN_PACKAGE or module_name.startswith(_OWN_PACKAGE + "."):
        return False
    module = sys.modules.get(module_name)
    if module is None:
        # Code built at run time under a made-up module name (exec, notebooks,
        # factories): libraries are always imported, so this is the user's.
        return True
    filename = getattr(module, "__file__", None)
    if not filename:
        return module_name == "__main__"  # a notebook; otherwise builtin or frozen
    path = os.path.realpath(filename)
    return not path.startswith(_LIBRARY_ROOTS)


class _Walk:
    """One traversal; `visited` keeps cycles (mutual recursion, self-reference) finite."""

    def __init__(self) -> None:
        self.visited: set[int] = set()
        self.environment: set[str] = set()
        self.attributes: dict[tuple[int, str], tuple[Any, str]] = {}
        self.self_attributes: set[str] = set()
        self.self_methods: set[str] = set()
        self.described: list[str] = []
        self.truncated = False

    def _first_visit(self, obj: Any) -> bool:
        if id(obj) in self.visited:
            return False
        if len(self.visited) >= MAX_VISITED:
            self.truncated = True
            return False
        self.visited.add(id(obj))
        return True

    # -- functions ------------------------------------------------------------------

    def function(
        self, func: Callable[..., Any], *, root: bool = False, on_self: bool = False
    ) -> list[Any]:
        """Code, defaults and reads of one function; `on_self`: it is a method whose
        reads off its first argument are the instance's state."""
        func = inspect.unwrap(func)
        code = getattr(func, "__code__", None)
        if code is None or not self._first_visit(func):
            return []
        name = f"{func.__module__}:{func.__qualname__}"
        self.described.append(name)
        source = normalised_source(func, without_decorators=root)
        parts: list[Any] = [
            "function",
            # The decorated function's own name is already in the key.
            "" if root else name,
            source if source is not None else _bytecode_summary(code),
        ]
        if not root:
            # Defaults of helpers shape what they build; the decorated function's
            # defaults are bound into its arguments already.
            parts.append(_plain(getattr(func, "__defaults__", None)))
            parts.append(_plain(getattr(func, "__kwdefaults__", None)))
        module_globals: dict[str, Any] = getattr(func, "__globals__", {})
        cells = dict(zip(code.co_freevars, getattr(func, "__closure__", None) or (), strict=False))
        first_argument = code.co_varnames[0] if on_self and code.co_argcount else None
        for code_object in _code_objects(code):
            parts.append(self._reads(code_object, module_globals, cells, first_argument))
            first_argument = None  # nested code objects have their own first local
        return parts

    def _reads(
        self,
        code: types.CodeType,
        module_globals: dict[str, Any],
        cells: dict[str, types.CellType],
        first_argument: str | None,
    ) -> list[Any]:
        found: list[Any] = []
        every_string_constant = False
        for chain_kind, chain, following in _chains(code):
            if chain_kind == "self":
                if chain[0] == first_argument and len(chain) > 1:
                    if _NOT_REQUEST.search(chain[1]):
                        continue
                    self.self_attributes.add(chain[1])
                    self.self_methods.add(chain[1])
                continue
            root_name = chain[0]
            if chain_kind == "global":
                if root_name not in module_globals:
                    continue  # a builtin (len, print) or not defined yet: nothing to follow
                value = module_globals[root_name]
            else:
                cell = cells.get(root_name)
                if cell is None:
                    continue
                try:
                    value = cell.cell_contents
                except ValueError:  # an empty cell: the variable is not bound yet
                    continue
            value, rest = _through_modules(value, chain[1:])
            if id(value) in _ENVIRONMENT_READERS:
                # os.environ["X"], os.environ.get("X"), os.getenv("X"): the name is
                # the constant loaded next; a computed name falls back to every
                # string constant of the code (reading a name that is not a
                # variable costs a dict lookup and gives None).
                if isinstance(following, str):
                    if not _NOT_REQUEST.search(following):
                        self.environment.add(following)
                else:
                    every_string_constant = True
                continue
            name = ".".join(chain[: len(chain) - len(rest)])
            try:
                found.append([name, self.value(value, rest)])
            except Exception as exc:  # a property that raises, a model that will not dump
                # Seen but not fingerprinted: the key still changes if its type does.
                logger.debug("could not fingerprint %s: %s", name, exc)
                found.append([name, "unreadable", type(value).__qualname__])
        if every_string_constant:
            self.environment.update(
                const
                for const in _constants(code)
                if isinstance(const, str) and const and not _NOT_REQUEST.search(const)
            )
        return found

    def methods_called_on_self(self, cls: type) -> list[Any]:
        """Helpers a method calls as self.helper(): their code and what they read."""
        parts: list[Any] = []
        pending = set(self.self_methods)
        seen: set[str] = set()
        while pending:
            # In name order: a set's order differs between processes (hash seeds).
            name = min(pending)
            pending.discard(name)
            seen.add(name)
            member = inspect.getattr_static(cls, name, None)
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                member = member.fget
            if isinstance(member, types.FunctionType):
                parts.append([name, self.function(member)])
                pending |= self.self_methods - seen
        # Attributes that are methods are code, followed above; the rest is state.
        self.self_attributes = {
            name
            for name in self.self_attributes
            if not isinstance(
                inspect.getattr_static(cls, name, None),
                (types.FunctionType, staticmethod, classmethod, property),
            )
        }
        return parts

    # -- values ---------------------------------------------------------------------

    def value(self, value: Any, rest: tuple[str, ...]) -> Any:
        """The static fingerprint part of one name the code reads."""
        if isinstance(value, types.ModuleType):
            return ["module", value.__name__]
        if isinstance(value, partial):
            return [
                "partial",
                self.value(value.func, ()),
                _plain(value.args),
                _plain(value.keywords),
            ]
        if isinstance(value, types.MethodType):
            return ["method", self.value(value.__func__, ()), self.value(value.__self__, ())]
        wrapped = getattr(value, "__wrapped__", None)
        if isinstance(wrapped, types.FunctionType) and not isinstance(value, types.FunctionType):
            # functools.lru_cache, cache and other wrappers around a helper.
            return ["wrapped", self.value(wrapped, rest)]
        if isinstance(value, types.FunctionType):
            if not is_user_code(value):
                return ["library function", f"{value.__module__}:{value.__qualname__}"]
            return self.function(value)
        if isinstance(value, type):
            return self.cls(value, rest)
        client = client_fingerprint(value)
        if client is not None:
            return client
        if _is_plain_data(value):
            return ["data", value]
        if rest and (is_user_code(type(value)) or _is_settings(value)):
            attribute = getattr(value, rest[0], None)
            if callable(attribute) and client_fingerprint(attribute) is None:
                return ["method of", type(value).__qualname__, self.value(attribute, rest[1:])]
            # An attribute of a configuration object: it can change while the
            # process runs (override_settings, a reloaded config), so it is
            # read at every call.
            if _NOT_REQUEST.search(rest[0]):
                return ["not part of the request", rest[0]]
            self.attributes.setdefault((id(value), rest[0]), (value, rest[0]))
            return ["attribute read per call", type(value).__qualname__, rest[0]]
        if is_user_code(type(value)):
            return ["instance", self.cls(type(value), ()), _plain(value)]
        return ["object", f"{type(value).__module__}.{type(value).__qualname__}"]

    def cls(self, cls: type, rest: tuple[str, ...]) -> Any:
        if rest:
            member = inspect.getattr_static(cls, rest[0], None)
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if member is not None and not isinstance(member, type):
                return ["class member", self.cls(cls, ()), self.value(member, rest[1:])]
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            return self.model(cls)
        if issubclass(cls, enum.Enum):
            return ["enum", cls.__qualname__, [[m.name, _plain(m.value)] for m in cls]]
        if not is_user_code(cls):
            return ["library class", f"{cls.__module__}.{cls.__qualname__}"]
        if not self._first_visit(cls):
            return ["class", cls.__qualname__]
        self.described.append(f"{cls.__module__}:{cls.__qualname__}")
        return ["class", cls.__qualname__, normalised_source(cls)]

    def model(self, model: type[BaseModel]) -> Any:
        """Validators and configuration of a response model and the models inside it.

        The JSON schema (fields, types, descriptions) is the schema fingerprint's
        job; what it cannot see is code that transforms or rejects values.
        """
        if not self._first_visit(model):
            return ["model", model.__qualname__]
        parts: list[Any] = ["model", model.__qualname__]
        decorators = model.__pydantic_decorators__
        for kind in (
            "validators",
            "field_validators",
            "root_validators",
            "field_serializers",
            "model_serializers",
            "model_validators",
            "computed_fields",
        ):
            for name, decorator in sorted(getattr(decorators, kind, {}).items()):
                func = getattr(decorator, "func", None)
                if isinstance(func, (classmethod, staticmethod, types.MethodType)):
                    func = func.__func__
                if isinstance(func, property):
                    func = func.fget
                body = self.function(func) if isinstance(func, types.FunctionType) else []
                parts.append([kind, name, _plain(_decorator_info(decorator)), body])
        parts.append(["config", _plain(dict(model.model_config))])
        for field_name, info in model.model_fields.items():
            for inner in _models_in(info.annotation):
                parts.append([field_name, self.model(inner)])
            # A validator attached with Annotated[..., AfterValidator(f)] lives in metadata.
            for item in info.metadata:
                func = getattr(item, "func", None)
                if isinstance(func, types.FunctionType):
                    parts.append([field_name, "metadata", self.function(func)])
        return parts


def client_fingerprint(value: Any) -> list[Any] | None:
    """What about an Instructor (or a provider's) client shapes a request."""
    cached = _client_fingerprints.get(value) if _weakrefable(value) else None
    if cached is not None:
        return cached
    fingerprint = _client_fingerprint(value)
    if fingerprint is not None and _weakrefable(value):
        _client_fingerprints[value] = fingerprint
    return fingerprint


def _client_fingerprint(value: Any) -> list[Any] | None:
    module = type(value).__module__
    if module.startswith("instructor"):
        mode = getattr(value, "mode", None)
        if mode is None:
            return None
        inner = getattr(value, "client", None)
        return [
            "instructor client",
            type(value).__qualname__,
            str(mode),
            str(getattr(value, "provider", "")),
            str(getattr(value, "default_model", None) or _patched_default_model(value) or ""),
            _plain(getattr(value, "kwargs", None)),
            _endpoint(inner),
            # A client built with a custom create function (patch()) keys on it.
            _function_name(getattr(value, "create_fn", None)),
        ]
    if module.startswith(("openai", "anthropic")) and hasattr(value, "base_url"):
        return ["provider client", type(value).__qualname__, _endpoint(value)]
    return None


_client_fingerprints: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def _patched_default_model(client: Any) -> Any:
    """The model `instructor.from_provider("openai/gpt-4o-mini")` binds: Instructor
    keeps it in a closure cell of the patched create function (1.17)."""
    create = getattr(client, "create_fn", None)
    code = getattr(create, "__code__", None)
    if code is None or "default_model" not in code.co_freevars:
        return None
    cell = create.__closure__[code.co_freevars.index("default_model")]  # type: ignore[union-attr]
    try:
        return cell.cell_contents
    except ValueError:
        return None


def _weakrefable(value: Any) -> bool:
    return hasattr(type(value), "__weakref__")


def _endpoint(client: Any) -> str:
    base_url = getattr(client, "base_url", None)
    return str(base_url) if base_url is not None else type(client).__qualname__


def _function_name(func: Any) -> str:
    func = getattr(func, "__wrapped__", func)
    return f"{getattr(func, '__module__', '')}:{getattr(func, '__qualname__', '')}"


def _decorator_info(decorator: Any) -> Any:
    info = getattr(decorator, "info", None)
    if info is None:
        return None
    fields = {}
    for name in ("fields", "mode", "check_fields", "when_used", "return_type"):
        if hasattr(info, name):
            fields[name] = getattr(info, name)
    return fields


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for argument in getattr(annotation, "__args__", ()) or ():
        yield from _models_in(argument)


def _is_settings(value: Any) -> bool:
    """Django's settings object (and lookalikes): attributes read per call."""
    return type(value).__name__ in {"LazySettings", "Settings", "UserSettingsHolder"}


def _through_modules(value: Any, chain: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
    """Follow `prompts.SYSTEM`, `pkg.prompts.SYSTEM`: attribute reads on modules.

    Only the user's modules (and `os`, for os.environ and os.getenv) are looked
    into. A library module is recorded by name: its attributes are not the
    user's to change, and reading them can trigger a lazy import that another
    thread may be in the middle of, which would make two processes disagree.
    """
    rest = chain
    while rest and isinstance(value, types.ModuleType):
        if value.__name__ != "os" and not _is_user_module(value.__name__):
            break
        attribute = getattr(value, rest[0], _MISSING)
        if attribute is _MISSING:
            break
        value, rest = attribute, rest[1:]
    return value, rest


_MISSING = object()


def _chains(code: types.CodeType) -> Iterator[tuple[str, tuple[str, ...], Any]]:
    """(kind, (root, attr, attr...), the constant loaded next or None) for each name
    read: a global, a closure cell or the first argument."""
    kind: str | None = None
    chain: list[str] = []
    for instruction in dis.get_instructions(code):
        op = instruction.opname
        if op in _ATTRIBUTE_OPS and kind is not None:
            chain.append(instruction.argval)
            continue
        if kind is not None:
            following = instruction.argval if op == "LOAD_CONST" else None
            yield kind, tuple(chain), following
            kind, chain = None, []
        if op in ("LOAD_GLOBAL", "LOAD_NAME"):
            kind, chain = "global", [instruction.argval]
        elif op in ("LOAD_DEREF", "LOAD_CLASSDEREF"):
            kind, chain = "cell", [instruction.argval]
        elif op == "LOAD_FAST" and instruction.arg == 0:
            kind, chain = "self", [instruction.argval]
    if kind is not None:
        yield kind, tuple(chain), None


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """The code and every nested code object: lambdas, comprehensions, inner functions."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _constants(code: types.CodeType) -> Iterable[Any]:
    for const in code.co_consts:
        if isinstance(const, tuple):
            yield from const
        elif not isinstance(const, types.CodeType):
            yield const


def _bytecode_summary(code: types.CodeType) -> list[Any]:
    consts = [
        _bytecode_summary(c)
        if isinstance(c, types.CodeType)
        # A frozenset constant (`x in {"a", "b"}`) reprs in hash-seed order.
        else sorted(map(repr, c))
        if isinstance(c, frozenset)
        else repr(c)
        for c in code.co_consts
    ]
    return [code.co_code.hex(), consts, list(code.co_names)]


def _is_plain_data(value: Any, depth: int = 0) -> bool:
    if isinstance(value, (_PLAIN_SCALARS, bytes, enum.Enum)):
        return True
    if depth > 20:
        return False
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_is_plain_data(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            _is_plain_data(k, depth + 1) and _is_plain_data(v, depth + 1) for k, v in value.items()
        )
    return isinstance(value, BaseModel)


def _plain(value: Any, *, skip_methods: bool = False) -> Any:
    """A JSON-able stand-in for `value` (what it is, never its identity)."""
    if isinstance(value, _PLAIN_SCALARS):
        return value
    if skip_methods and callable(value) and not isinstance(value, type):
        client = client_fingerprint(value)
        return client if client is not None else "<callable>"
    client = client_fingerprint(value)
    if client is not None:
        return client
    try:
        return orjson.loads(orjson.dumps(value, default=_opaque, option=_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError):
        return _opaque(value)


_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS


def _opaque(value: Any) -> Any:
    """orjson's fallback: a type-tagged form for what JSON has no form for."""
    if isinstance(value, BaseModel):
        return [type(value).__qualname__, value.model_dump(mode="json")]
    if isinstance(value, (set, frozenset)):
        return sorted(orjson.dumps(item, default=_opaque).decode() for item in value)
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, enum.Enum):
        return [type(value).__qualname__, value.name]
    if isinstance(value, type):
        return ["class", f"{value.__module__}.{value.__qualname__}"]
    client = client_fingerprint(value)
    if client is not None:
        return client
    return ["object", f"{type(value).__module__}.{type(value).__qualname__}"]
