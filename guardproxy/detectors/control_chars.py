"""Terminal control sequences: ANSI escapes (colours, cursor moves, screen clears), OSC 8 hyperlinks, and the
other control characters a terminal or log viewer acts on instead of showing.

Answers end up in terminals and logs: `\\x1b[2J` clears a screen, `\\x1b]8;;https://evil/\\x1b\\\\here\\x1b]8;;\\x1b\\\\`
shows "here" but links elsewhere, a run of backspaces hides what came before. The detector reports each
sequence as a span; the step's action decides (`strip` removes it, `escape` spells it out, `block`).
A sequence still open at the end of the text (an OSC whose terminator has not arrived in a stream) is a
span to the end, so the stream guard holds it back until it is complete.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from guardproxy.core import Context, Detection, Span
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import ControlCharsConfig

# Strings (OSC, DCS, SOS, PM, APC), 7-bit and 8-bit introducers, ended by BEL or ST, or open to the end.
_STRING = r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|\Z)"
_CSI = r"(?:\x1b\[|\x9b)[0-?]*[ -/]*(?:[@-~]|\Z)"
_ESCAPE = r"\x1b[ -/]*[0-~]?"  # two-character escapes (ESC c resets the terminal), or a lone ESC
# Other controls but tab, newline and carriage return (ordinary in text and code).
_SINGLE = r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]"
_SEQUENCE = re.compile(f"{_STRING}|{_CSI}|{_ESCAPE}|{_SINGLE}")


def _label(sequence: str) -> str:
    if sequence.startswith(("\x1b]8;", "\x9d8;")):
        return "OSC_HYPERLINK"
    if sequence.startswith(("\x1b[", "\x9b")):
        return "ANSI_ESCAPE"
    if sequence.startswith(("\x1b", "\x90", "\x98", "\x9d", "\x9e", "\x9f")):
        return "TERMINAL_SEQUENCE"
    return "CONTROL_CHAR"


class ControlCharsDetector:
    scope: Literal["text", "request"] = "text"
    inline: ClassVar[bool] = True  # InlineDetector: one regex pass, never awaits

    def __init__(self, name: str, config: ControlCharsConfig, deps: DetectorDeps) -> None:
        self.name = name

    async def detect(self, text: str, ctx: Context) -> Detection:
        if text.isprintable():  # the common case: no control character at all (newlines are not printable)
            return Detection(score=0.0)
        spans = tuple(
            Span(m.start(), m.end(), _label(m.group(0))) for m in _SEQUENCE.finditer(text) if m.end() > m.start()
        )
        if not spans:
            return Detection(score=0.0)
        labels = tuple(sorted({s.label for s in spans}))
        return Detection(score=1.0, labels=labels, spans=spans, explanation=f"{len(spans)} control sequence(s)")

    async def aclose(self) -> None:
        return None
