"""The words every format writes, cleaned the same way so that all formats carry the same words.

Engines give words with boxes, but not always: a line without word boxes (an engine that
reports lines only, or a line whose word boxes it dropped) still has text, so its words are
placed across the line box in proportion to their length. Text is cleaned of characters
that XML cannot hold and that would break plain text (control characters such as the form
feed that separates pages), and words that are left empty are dropped: hOCR consumers skip
them, ALTO's String needs content, and MiniOCR warns about them.
"""

from __future__ import annotations

import re

from bulkocr.page_model import Block, Box, Line, Word

# C0 controls other than tab and newline, DEL and C1 controls, lone surrogates, and the two
# non-characters XML 1.0 forbids.
_UNWANTED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str) -> str:
    """The text without control characters and the code points that XML 1.0 cannot carry."""
    return _UNWANTED.sub("", text)


def block_lines(block: Block) -> list[tuple[Line, list[Word]]]:
    """The block's lines that have words left after cleaning, each with those words."""
    lines = ((line, line_words(line)) for line in block.lines)
    return [(line, words) for line, words in lines if words]


def line_words(line: Line) -> list[Word]:
    """The line's non-empty words with clean text; words spread over the line box if it has none."""
    words = line.words or _spread(line)
    cleaned = (word.model_copy(update={"text": " ".join(clean_text(word.text).split())}) for word in words)
    return [word for word in cleaned if word.text]


def _spread(line: Line) -> list[Word]:
    """Words for a line that came without word boxes: its text split on spaces, each word given a
    slice of the line box as wide as its share of the characters."""
    texts = line.text.split()
    if not texts:
        return []
    box = line.box
    total = len(" ".join(texts))
    words: list[Word] = []
    start = 0
    for text in texts:
        x0 = box.x0 + box.width * start // total
        x1 = box.x0 + box.width * (start + len(text)) // total
        words.append(Word(text=text, box=Box(x0=x0, y0=box.y0, x1=x1, y1=box.y1), confidence=line.confidence))
        start += len(text) + 1
    return words
