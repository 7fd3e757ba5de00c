"""Inert outputs: values quantrisk writes into CSV, Markdown and the terminal cannot act as formulas, markup or
terminal commands (SECURITY.md, "Outputs are inert").

- `csv_cell`: OWASP's CSV-injection rule. A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return
  is evaluated as a formula by spreadsheets; it is written with a leading `'` (shown as text, the value readable).
  Numbers are left as they are (a negative number is not text).
- `md_text`: a value inside Markdown (table cell, heading): a `<` that could open a tag, comment or autolink (before
  a letter, `/`, `!`, `?`) and an `&` that could open an entity become entities (`<img onerror>` is
  shown, not rendered), the characters of table cells, emphasis and code (`|`, `*`,
  `` ` ``, `\\`) and the `(` of a link or the `[` of an image (`](`, `![`) are backslash-escaped, and line breaks
  become spaces: a newline in a name cannot start a heading, a list or a table row (values are placed after
  other text on their line, so a leading `#` or `-` stays inline). Brackets alone (`[0.75, 0.85]`) and `_`
  inside words stay as they are.
- `md_line`: a sentence quantrisk composed around such values (headline lines, notes): `<`, `&` escaped as above, the
  `(` of a link and the `[` of an image escaped, line breaks turned into spaces; its own emphasis is kept.
- `md_block_start`: one line of a wrapped paragraph, bullet or heading: a character that would make the line start a
  block (a heading `#`, a quote `>`, a list `-`/`+`/`*`/`1.`, a rule or setext underline `===`/`---`, a fence
  `` ``` ``/`~~~`, a table `|`) is backslash-escaped, so a value wrapped onto the start of a line stays text.
- `terminal`: control characters (C0 except none, DEL, C1, and the Unicode line/paragraph separators and
  bidirectional overrides) are replaced by their `\\xNN` / `\\uNNNN` escape, so a label cannot clear the screen,
  set the title, or print a forged line (`\\nverdict: clean`).
"""

from __future__ import annotations

import re
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MD_INLINE = re.compile(r"([\\`*|])")
_BREAKS = re.compile("[\r\n\u2028\u2029\x85]+")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # CommonMark: raw HTML and autolinks start `<` + letter, / ! or ?
_ENTITY_START = re.compile(r"&(?=[A-Za-z#])")  # an entity reference is `&name;` or `&#digits;`
_LINK = re.compile(r"((?<=\])\(|(?<=!)\[)")  # `](` opens a link's target, `![` an image
# CommonMark block starts: ATX heading, quote, bullet, ordered item, thematic break / setext underline, fence, table
_BLOCK_START = re.compile(r"[ \t]*(?P<mark>#{1,6}(?=[ \t]|$)|>|[-+*](?=[ \t]|$)|\d{1,9}[.)](?=[ \t]|$)|=+[ \t]*$"
                          r"|(?:[-*_][ \t]*){3,}$|`{3,}|~{3,}|\|)")


def csv_cell(value: Any) -> Any:
    """`value` with a leading `'` when it is text a spreadsheet would evaluate (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: Any) -> str:
    """`str(text)` with every control character replaced by its visible escape (`\\x1b`, `\\x0a`, ...)."""
    return _CONTROL.sub(lambda m: _escape(m.group()), str(text))


def terminal_lines(text: Any) -> str:
    """Like `terminal`, but keeps newlines and tabs (for multi-line messages quantrisk itself composes); every
    other control character is escaped."""
    return "\n".join(terminal(line).replace("\\x09", "\t") for line in str(text).split("\n"))


def md_text(value: Any) -> str:
    """`value` safe inside Markdown (table cell, heading, list item): HTML escaped, structure characters
    backslash-escaped, line breaks and other control characters turned into spaces."""
    return md_line(_MD_INLINE.sub(r"\\\1", str(value)))  # backslashes first, then md_line's own escapes


def md_line(value: Any) -> str:
    """`value` as one Markdown line: a `<` or `&` that could open an HTML tag or entity escaped, the `(` of a link
    and the `[` of an image escaped, line breaks and control characters turned into spaces."""
    text = _CONTROL.sub(" ", _BREAKS.sub(" ", str(value)))
    # no tag, comment, autolink or entity can start; `>` alone, `< 0.001` and `&` before a space are inert and kept
    return _LINK.sub(r"\\\1", _TAG_START.sub("&lt;", _ENTITY_START.sub("&amp;", text)))


def md_block_start(line: str) -> str:
    """`line` with a leading block marker (after its indentation) backslash-escaped: it cannot start a heading,
    quote, list, rule, fence or table, whatever value was wrapped onto its start."""
    m = _BLOCK_START.match(line)
    if m is None:
        return line
    i = m.start("mark")
    if line[i].isdigit():  # an ordered-list marker: escape its `.` or `)`
        j = m.end("mark") - 1
        return line[:j] + "\\" + line[j:]
    return line[:i] + "\\" + line[i:]


def terminal_message(text: Any) -> str:
    """An error message for the terminal: control characters escaped, except the line breaks quantrisk puts
    before the indented lines of a several-problem message ("\\n  "); any other newline is escaped, so a value
    inside cannot print a line of its own."""
    parts = str(text).split("\n  ")
    return "\n  ".join(terminal(x) for x in parts)
