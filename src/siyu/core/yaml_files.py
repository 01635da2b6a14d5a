"""YAML definition files (loyalty programs, journeys, guide rules): parse, validate with a pydantic
model, and point every problem at `file:line: field` so the user knows where to look.

One place for this, because the three definition kinds must report errors the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from siyu.core.errors import SiyuError

M = TypeVar("M", bound=BaseModel)


class PlacedError(ValueError):
    """A cross-field error that knows where in the file it belongs (model validators otherwise
    report at the top level, without a line)."""

    def __init__(self, message: str, *loc: int | str) -> None:
        super().__init__(message)
        self.loc = loc


def line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The line of the YAML node at `loc`, so the error points where the user has to look."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _is_file_key(part: Any, models: frozenset[str]) -> bool:
    """pydantic adds validator names (`function-after[...]`) and union member names (`ReEntry`,
    `tagged-union[...]`) to an error's path; they are not keys of the file."""
    return not (isinstance(part, str) and (part.startswith("function-") or "[" in part or part in models))


def parse_definition(
    text: str,
    path: str,
    model: type[M],
    error: Callable[[str], SiyuError],
    *,
    what: str,
    shape: str,
    union_members: frozenset[str] = frozenset(),
) -> M:
    """Parse `text` (read from `path`) as a mapping validated by `model`.

    Raises `error(message)` naming `path:line` for invalid YAML, a non-mapping file, or each field
    that fails validation. `what` is the bilingual title of the list of problems ("invalid journey
    旅程定义有误"); `shape` says what the file should look like ("a journey file is a YAML mapping …");
    `union_members` names the model classes of untagged unions, which pydantic puts in the path.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise error(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from e
    if not isinstance(data, dict):
        raise error(f"{path}: {shape}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(x for x in err["loc"] if _is_file_key(x, union_members))
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, PlacedError):
                loc += cause.loc
            field = ".".join(str(x) for x in loc) or "(file)"
            line = line_of(text, loc)
            where = f"{path}:{line}" if line else path
            problems.append(f"{where}: {field}: {err['msg']}")
        raise error(f"{what}:\n" + "\n".join(problems)) from e
