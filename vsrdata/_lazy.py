"""Lazily imported public functions: a stand-in that imports the real one on its first call.

The stand-in's docstring and signature come from the defining module's source (parsed with
`ast`, not imported), so `help(vsrdata.evaluate)` works without importing torch.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
from pathlib import Path
from typing import Any, Callable


class _Default:
    """A default value that is not a literal (e.g. `64 * _MIB`), shown as its source text."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _value(node: ast.expr | None) -> Any:
    if node is None:
        return inspect.Parameter.empty
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _Default(ast.unparse(node))


def _signature(node: ast.FunctionDef) -> inspect.Signature:
    P, args = inspect.Parameter, node.args
    params = []
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for i, (arg, default) in enumerate(zip(positional, defaults)):
        kind = P.POSITIONAL_ONLY if i < len(args.posonlyargs) else P.POSITIONAL_OR_KEYWORD
        params.append(P(arg.arg, kind, default=_value(default), annotation=_annotation(arg)))
    if args.vararg:
        params.append(P(args.vararg.arg, P.VAR_POSITIONAL, annotation=_annotation(args.vararg)))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append(P(arg.arg, P.KEYWORD_ONLY, default=_value(default), annotation=_annotation(arg)))
    if args.kwarg:
        params.append(P(args.kwarg.arg, P.VAR_KEYWORD, annotation=_annotation(args.kwarg)))
    returns = ast.unparse(node.returns) if node.returns is not None else inspect.Signature.empty
    return inspect.Signature(params, return_annotation=returns)


def _annotation(arg: ast.arg) -> Any:
    return ast.unparse(arg.annotation) if arg.annotation is not None else inspect.Parameter.empty


def _source_def(name: str, module: str) -> ast.FunctionDef:
    parts = module.split(".")
    if parts[0] == "vsrdata":  # our own file, found without importing its packages (which may import torch)
        base = Path(__file__).resolve().parent.joinpath(*parts[1:])
        origin = str(base / "__init__.py") if base.is_dir() else str(base.with_suffix(".py"))
    else:
        origin = importlib.util.find_spec(module).origin  # finds the file; imports only parent packages
    for node in ast.parse(Path(origin).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AttributeError(f"{module} defines no function {name!r}")


def lazy_function(name: str, module: str) -> Callable:
    """`module.name` (`module` may be 'package.module:function' when the function is named
    otherwise), imported on the first call; docstring and signature read from the source."""
    module, _, func = module.partition(":")
    func = func or name
    node = _source_def(func, module)

    @functools.lru_cache(maxsize=None)
    def target() -> Callable:
        return getattr(importlib.import_module(module), func)

    def call(*args, **kwargs):
        return target()(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__module__ = "vsrdata"
    call.__doc__ = ast.get_docstring(node)
    call.__signature__ = _signature(node)
    call.target = target  # the real function (imports its module)
    return call
