"""Shared JS (``Workflow(name, lib=...)``): its top-level declarations become ``lib``.

The host only reads the source to find the names declared at its top level
(``function f``, ``async function f``, ``function* f``, ``class C``, ``const``/
``let``/``var`` with plain names); nothing is evaluated here. The pool evaluates
:func:`lib_script` once per runtime and gives every step the frozen result as
``lib``.
"""

from __future__ import annotations

import re

__all__ = ("declared_names", "lib_script")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^'\\\n]|\\.)*'?|"(?:[^"\\\n]|\\.)*"?)
  | (?P<name>[A-Za-z_$][\w$]*)
  | (?P<number>\d[\w.]*)
  | (?P<punct>=>|\.\.\.|[{}()\[\];,=*`/]|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_TEMPLATE_PART = re.compile(r"(?:[^`\\$]|\\.|\$(?!\{))*", re.DOTALL)
_REGEX = re.compile(r"/(?:[^/\\\[\n]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[a-z]*")
_STARTERS = frozenset({"const", "let", "var", "function", "class", "async"})
_OPENS = {")": "(", "]": "["}
_DECLARES = frozenset({"const", "let", "var"})
# After these a "/" starts a regular expression, not a division.
_BEFORE_REGEX_WORDS = frozenset(
    "return typeof instanceof in of new delete void throw case do else yield await".split()
)


def declared_names(source: str) -> tuple[str, ...]:
    """The names declared at the top level of ``source``, in order, without repeats."""
    return tuple(dict.fromkeys(_Scanner(source).names()))


def lib_script(source: str) -> str:
    """The body of a function that runs ``source`` and returns its declarations."""
    names = ", ".join(declared_names(source))
    return f"{source}\n;return {{{names}}};"


class _Scanner:
    def __init__(self, source: str) -> None:
        self._src = source
        self._pos = 0
        self._braces: list[str] = []  # open brackets; "${" for template holes

    def names(self) -> list[str]:
        found: list[str] = []
        previous: str | None = None  # the last significant token
        expect: str | None = None  # "function", "class", "declare": what names come next
        depth_at_declaration = 0
        for kind, text, depth in self._tokens():
            if depth == 0 and text in _STARTERS and _statement_start(previous):
                if text in _DECLARES:
                    expect, depth_at_declaration = "declare", 0
                elif text in ("function", "class"):
                    expect = text
                elif text == "async":
                    previous = None  # "async function" starts a statement too
                    continue
            elif expect == "declare" and depth == depth_at_declaration:
                if kind == "name" and previous in ("const", "let", "var", ","):
                    found.append(text)
                elif text == ";":
                    expect = None
            elif expect in ("function", "class") and kind == "name":
                found.append(text)
                expect = None
            elif expect in ("function", "class") and text != "*":
                expect = None
            previous = text
        return found

    def _tokens(self) -> list[tuple[str, str, int]]:
        tokens: list[tuple[str, str, int]] = []
        previous: str | None = None
        src = self._src
        while self._pos < len(src):
            if src[self._pos] == "/" and _regex_may_start(previous):
                regex = _REGEX.match(src, self._pos)
                if regex is not None:
                    self._pos = regex.end()
                    previous = "regex"
                    continue
            match = _TOKEN.match(src, self._pos)
            assert match is not None  # the last alternative takes any character
            self._pos = match.end()
            kind, text = match.lastgroup or "punct", match.group()
            if kind in ("space", "comment"):
                continue
            depth = len(self._braces)
            if text == "`":
                self._template()
                kind, text = "string", "``"
            elif text in ("{", "(", "["):
                self._braces.append(text)
            elif text in (")", "]") and self._braces and self._braces[-1] == _OPENS[text]:
                self._braces.pop()
                depth = len(self._braces)
            elif text == "}" and self._braces:
                if self._braces.pop() == "${":
                    self._template()  # the rest of the template after its hole
                    kind, text = "string", "``"
                depth = len(self._braces)
            tokens.append((kind, text, depth))
            previous = text if kind in ("name", "punct") else kind
        return tokens

    def _template(self) -> None:
        """Skip template text up to its end or its next ``${`` (pushed as a brace)."""
        part = _TEMPLATE_PART.match(self._src, self._pos)
        self._pos = part.end() if part is not None else self._pos
        if self._src.startswith("${", self._pos):
            self._braces.append("${")
            self._pos += 2
        else:
            self._pos += 1  # the closing backtick


def _statement_start(previous: str | None) -> bool:
    """Whether a keyword after ``previous`` starts a statement (semicolons optional)."""
    if previous is None or previous in (";", "}", ")", "]"):
        return True
    if previous in _BEFORE_REGEX_WORDS:
        return False
    return previous[:1].isalnum() or previous[:1] in "_$'\"`"


def _regex_may_start(previous: str | None) -> bool:
    if previous is None or previous in _BEFORE_REGEX_WORDS:
        return True
    if previous in ("name", "number", "string", "regex", ")", "]"):
        return False
    return not (previous[:1].isalnum() or previous[:1] in "_$")
