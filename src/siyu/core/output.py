"""Writing a file a person named (`--out`, `--export`, reports): the one way siyu does it.

A path that is a folder, not a regular file, or not writable is refused with one line before any
work is done; an existing file is replaced only when asked (`--force`); the format comes from the
extension or the path is refused, naming the extensions that work. The data goes to a temporary
file beside the target, renamed over it only once complete, so a failed or interrupted write never
leaves a half-written file, nor destroys the file that was there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from siyu.core.errors import SiyuError


class OutputError(SiyuError):
    code = "bad_output"
    exit_code = 2


def output_format(path: Path, formats: Mapping[str, str], given: str | None = None) -> str:
    """The format of `path` by its extension (`formats`: {".csv": "csv", …}); `given` (`--format`)
    must agree with it."""
    _not_a_folder(path)
    suffix = path.suffix.lower()
    known = ", ".join(formats)
    if suffix not in formats:
        what = f"extension {suffix!r}" if suffix else "no extension"
        raise OutputError(f"{path}: {what}; supported: {known} (不支持的文件类型)")
    if given is not None and given != formats[suffix]:
        raise OutputError(f"{path}: --format {given} does not match the extension {suffix!r} (格式与扩展名不符)")
    return formats[suffix]


def check_output(path: Path, *, force: bool = False) -> None:
    """Refuse a target that cannot or should not be written, with one line saying what to do; a
    command calls this before long work, so that it does not fail at the end."""
    _check_target(path, force=force)
    with _temporary(path):
        pass


def _not_a_folder(path: Path) -> None:
    if str(path) in ("", ".") or path.is_dir():  # an empty --out arrives as Path("") == "."
        raise OutputError(f"{str(path)!r} is a folder, not a file: name the file to write (请指定文件名)")


def _check_target(path: Path, *, force: bool) -> None:
    _not_a_folder(path)
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise OutputError(f"{path} exists and is not a regular file: choose another path (目标不是普通文件)")
        if not force:
            raise OutputError(f"{path} exists: pass --force to replace it, or choose another path (文件已存在)")


@contextmanager
def _temporary(path: Path) -> Iterator[Path]:
    """A new empty file beside `path` (parent folders created), removed on exit."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.touch(exist_ok=False)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error} (无法写入)") from error
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; it becomes `path` when the block succeeds
    and is removed when it fails. The target is checked (`check_output`) on entry, before the
    caller computes anything."""
    path = Path(path)
    _check_target(path, force=force)
    with _temporary(path) as tmp:
        yield tmp
        if not force and path.exists():  # appeared while we were writing: do not clobber it
            raise OutputError(f"{path} was created meanwhile: pass --force to replace it (文件已存在)")
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise OutputError(f"cannot write {path}: {error.strerror or error} (无法写入)") from error
