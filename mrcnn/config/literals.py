"""Values written as text (command-line overrides, "(0.5, 0.6)" in yaml) read as Python literals."""

import ast
from typing import Any

__all__ = ["parse_literal"]


def parse_literal(raw: str) -> Any:
    """``raw`` as a Python literal ("0.5", "[1, 2]", "('a',)"; "true"/"false" in any case as bools);
    any other text stays the string it is."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        lowered = raw.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return raw
