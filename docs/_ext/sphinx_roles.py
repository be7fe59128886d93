"""Griffe extension for the docs build: render Sphinx cross-reference roles.

The package's docstrings use Sphinx roles (:func:`name`, :class:`~pkg.Name`,
:mod:`.module`, :meth:`Class.method`, ...), which Markdown would print
literally.  This extension rewrites each role, once the whole package is
loaded, into inline code wrapped in an *optional* autorefs link: the code
links to the API page of the target when that page renders it, and stays
plain code (without a warning) when it does not, e.g. for private modules.

Targets are resolved the way Sphinx does for this package: a full dotted path
as is; a relative one (``.module``) against the object's package; a bare name
in the scope of the object that owns the docstring (its imports included).
Bracket pairs that Markdown would read as a reference link but that name no
Python object, such as the block matrix "[H,1][H,1]ᵀ", are escaped.
"""
from __future__ import annotations

import html
import re

import griffe

# Text such as "[H,1][H,1]ᵀ" (a block matrix) reads as a Markdown reference
# link; brackets whose label is not a dotted Python name are escaped.
_BRACKETS = re.compile(r"\[([^\[\]]*)\]\[([^\[\]]*)\]")
_NAME = re.compile(r"[A-Za-z_][\w.]*")
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const):`(~?)([^`<>]+?)`")


def _resolve(obj: griffe.Object, target: str) -> str | None:
    target = target.strip().rstrip("()")
    if target.startswith("."):
        module = obj if obj.is_module else obj.module
        base = module.path if module.is_package else module.path.rsplit(".", 1)[0]
        target = target.lstrip(".")
        return f"{base}.{target}" if target else base
    if target.split(".", 1)[0] == "rftheory":
        return target
    head, _, rest = target.partition(".")
    scope = obj
    while scope is not None:
        try:
            full = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            scope = scope.parent
            continue
        return f"{full}.{rest}" if rest else full
    return None


def _rewrite(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match) -> str:
        short, target = match.group(1), match.group(2).strip()
        shown = target.lstrip(".").rstrip("()")
        if short:
            shown = shown.rsplit(".", 1)[-1]
        code = f"<code>{html.escape(shown)}</code>"
        full = _resolve(obj, target)
        if not full:
            return code
        return f'<autoref identifier="{html.escape(full)}" optional>{code}</autoref>'

    def escape(match: re.Match) -> str:
        if _NAME.fullmatch(match.group(2)) or (not match.group(2) and _NAME.fullmatch(match.group(1))):
            return match.group(0)
        return f"\\[{match.group(1)}\\]\\[{match.group(2)}\\]"

    return _ROLE.sub(replace, _BRACKETS.sub(escape, text))


def _walk(obj: griffe.Object, seen: set[str]):
    if obj.path in seen:
        return
    seen.add(obj.path)
    if obj.docstring is not None:
        obj.docstring.value = _rewrite(obj, obj.docstring.value)
    for member in obj.members.values():
        if member.is_alias:
            continue
        _walk(member, seen)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        _walk(pkg, set())
