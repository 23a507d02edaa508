"""Small file helpers: transparent ``.gz``, BOM/CRLF-tolerant text, atomic writes."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import json
import math
import os
import secrets
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mocme.errors import DataError

# What parsing YAML text can raise: besides yaml.YAMLError, PyYAML's constructors raise assorted
# built-in errors on malformed scalars ("!!int x", "2001-13-45", "!!timestamp") and deep nesting
# raises RecursionError. The parser sees only user text, so every failure of it means bad input.
YAML_ERRORS = Exception


def exists(path: Path) -> bool:
    """Whether ``path`` or ``path.gz`` is a file (what :func:`resolve` would find)."""
    return path.is_file() or path.with_name(path.name + ".gz").is_file()


def resolve(path: str | os.PathLike[str]) -> Path:
    """Return ``path``, or ``path.gz`` when only the compressed file exists."""
    path = Path(path)
    if path.exists():
        return path
    gz = path.with_name(path.name + ".gz")
    if gz.exists():
        return gz
    raise DataError(path, "file not found")


def read_text(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """Read a UTF-8 text file (optionally gzipped), dropping a BOM and normalising CRLF.

    Returns the resolved path (for error messages) and the text.
    """
    path = resolve(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(path, f"cannot read file ({err})") from None
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        before = raw[: bom + err.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        raise DataError(path, f"not valid UTF-8 (byte {bom + err.start})", before.count(b"\n") + 1) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return path, text


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    A crash at any point leaves either the old file or the new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = create_beside(path.parent, f".{path.name}.", ".tmp", folder=False)
    with contextlib.suppress(FileNotFoundError):  # a replaced file keeps its mode, as open(path, "w") would
        os.chmod(tmp_path, stat.S_IMODE(os.stat(path).st_mode))
    try:
        yield tmp_path
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def create_beside(parent: Path, prefix: str, suffix: str, *, folder: bool) -> Path:
    """A new, uniquely named empty file (or folder) ``parent/<prefix><random><suffix>``.

    Created with mode 0666 (0777) less the process's umask *now*, as ``open(path, "w")`` or
    ``mkdir`` would, unlike ``tempfile``'s private 0600 (0700).
    """
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            if folder:
                os.mkdir(candidate, 0o777)
            else:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent}: no free temporary name for {prefix}*{suffix}")


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (and ``folder``) to disk: what a rename then
    publishes is complete after a power loss too."""
    for path in sorted(folder.rglob("*"), reverse=True):  # the files of a folder before the folder
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        else:
            fsync_dir(path)
    fsync_dir(folder)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_ready(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None, which JSON writes as null (NaN is
    not JSON: the metrics of an empty group, e.g. the head queries of a group with tail queries only)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: json_ready(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [json_ready(value) for value in data]
    return data


def to_json(data: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``data`` (non-finite floats as null, see :func:`json_ready`)."""
    return json.dumps(json_ready(data), indent=indent, allow_nan=False)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, to_json(data, indent=2) + "\n")


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk. A torn last line (a crash mid-append) is cut off
    first, so the new record starts a line of its own; readers tolerate a torn last line too."""
    with open(path, "ab+") as handle:
        end = handle.seek(0, os.SEEK_END)
        if end:
            handle.seek(end - 1)
            if handle.read(1) != b"\n":
                handle.seek(0)
                content = handle.read()
                handle.truncate(content.rfind(b"\n") + 1)
        handle.seek(0, os.SEEK_END)
        handle.write((to_json(record) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSONL file, skipping a torn last line left by a crash."""
    records = []
    path = Path(path)
    if not path.exists():
        return records
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise DataError(path, "malformed JSON line", number) from None
    return records
