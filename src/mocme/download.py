"""Fetch known benchmarks from their public sources, or from a mirror, verifying each file's sha256.

The packaged ``mocme/data/manifest.tsv`` lists every file: its path in the data directory, its
size and sha256 as the source serves it (uncompressed), and the source as
``owner/repo@commit:path`` on GitHub, fetched from ``raw.githubusercontent.com``.

A **mirror** is a base URL that serves a data directory's layout: ``<mirror>/<path>``, or, when
that answers 404, ``<mirror>/<path>.gz`` (a gzipped copy, as ``../shared/data`` keeps files over
1 MiB). Either way the uncompressed file is verified and stored, so every source gives the same
folder.

Safety: each file is written to a temporary name beside its destination and renamed only once its
checksum matches, so a failed or interrupted download leaves no partial file. The files that
:func:`mocme.data.registry.is_available` checks are fetched last, so a benchmark whose download
stopped part-way never counts as available. A re-run skips files already present (plain or
gzipped) with the right checksum.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tempfile
import urllib.parse
import zlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mocme.data.registry import BENCHMARKS, PathLike, benchmark, data_dir
from mocme.errors import DataError, MocmeError
from mocme.io import atomic_path
from mocme.version import package_version

MIRROR_ENV = "MOCME_MIRROR"
DEFAULT_TIMEOUT = 30.0
PUBLIC_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
_CHUNK = 1 << 16

NO_LICENCE = "no licence stated"
LICENCES: dict[str, str] = {
    "zjukg/NATIVE": NO_LICENCE,
    "thunlp/OpenKE": NO_LICENCE,
    "JTWang722/Multi-modal-FB15k": NO_LICENCE,
    "mniepert/mmkb": "BSD-3-Clause",
    "yao8839836/kg-bert": "Apache-2.0",
}
"""Licence of each source repository, as stated in the repository."""

ATTRIBUTION = (
    "Where no licence is stated, redistribution terms are unstated: cite the papers that introduced the data. "
    "The underlying knowledge bases (DBpedia, Wikidata, YAGO, Freebase, WordNet) have terms of their own."
)

# Files outside a benchmark's folder that its entity-text loader reads (see registry._TEXT_LOADERS).
_TEXT_ELSEWHERE: dict[str, tuple[str, ...]] = {"WN18": ("WN18RR/entity2text.txt",)}


@dataclass(frozen=True)
class RemoteFile:
    """One manifest entry: where the file goes, its size and checksum, and where it comes from."""

    path: str  # relative to the data directory, e.g. "WN18/train2id.txt"
    size: int  # bytes, uncompressed
    sha256: str  # of the uncompressed file
    repo: str  # "owner/name" on GitHub
    commit: str
    source_path: str  # inside the repository

    @property
    def public_url(self) -> str:
        return PUBLIC_URL.format(repo=self.repo, commit=self.commit, path=urllib.parse.quote(self.source_path))


@dataclass
class DownloadReport:
    """What :func:`download` did: the benchmark's folder and which files it fetched or found."""

    name: str
    folder: Path
    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "folder": str(self.folder), "downloaded": self.downloaded, "present": self.present}


@cache
def manifest() -> tuple[RemoteFile, ...]:
    """Every downloadable file, in the packaged manifest's order."""
    resource = resources.files("mocme.data").joinpath("manifest.tsv")
    rows = [line for line in resource.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    files = []
    for number, line in enumerate(rows[1:], start=2):  # rows[0] is the header
        fields = line.split("\t")
        source = re.fullmatch(r"([\w.-]+/[\w.-]+)@([0-9a-f]{40}):(.+)", fields[-1])
        if len(fields) != 4 or source is None or not fields[1].isdigit():
            raise DataError(str(resource), "malformed manifest row", number)
        files.append(RemoteFile(fields[0], int(fields[1]), fields[2], *source.groups()))
    return tuple(files)


def benchmark_files(name: str) -> list[RemoteFile]:
    """The files that ``mocme download NAME`` fetches, in order.

    These are the benchmark's folder plus any text file its loader reads from another folder. The
    files that :func:`~mocme.data.registry.is_available` checks come last.
    """
    spec = benchmark(name)
    by_path = {f.path: f for f in manifest()}
    wanted = [p for p in by_path if p.startswith(f"{spec.folder}/")] + list(_TEXT_ELSEWHERE.get(spec.name, ()))
    core = [f"{spec.folder}/{file}" for file in spec.files()]
    missing = [p for p in core if p not in by_path]
    if missing:
        raise MocmeError(f"the packaged manifest lacks {', '.join(missing)}")
    return [by_path[p] for p in wanted if p not in core] + [by_path[p] for p in core]


def sources(files: list[RemoteFile]) -> list[tuple[str, str]]:
    """The ``(repo, commit)`` pairs that ``files`` come from, in manifest order."""
    used = {(f.repo, f.commit) for f in files}
    return [pair for pair in dict.fromkeys((f.repo, f.commit) for f in manifest()) if pair in used]


def licence_notes(files: list[RemoteFile]) -> list[str]:
    """One line per source repository of ``files``: where it is and its licence."""
    return [
        f"source https://github.com/{repo} (commit {commit[:7]}), licence: {LICENCES.get(repo, 'unknown')}"
        for repo, commit in sources(files)
    ]


def catalogue() -> list[dict[str, Any]]:
    """What can be downloaded: per benchmark its file count, total size and source repositories."""
    rows = []
    for spec in BENCHMARKS.values():
        files = benchmark_files(spec.name)
        repos = [repo for repo, _ in sources(files)]
        rows.append({"name": spec.name, "files": len(files), "bytes": sum(f.size for f in files), "sources": repos})
    return rows


def check_options(mirror: str | None, timeout: float) -> str | None:
    """Validate :func:`download`'s options; returns the mirror base URL (``None``: the public sources)."""
    if not timeout > 0:
        raise MocmeError(f"timeout must be positive, got {timeout}")
    return mirror_url(mirror)


def mirror_url(mirror: str | None = None) -> str | None:
    """The mirror base URL: the argument, else ``$MOCME_MIRROR``; ``None`` means the public sources."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    if not mirror:
        return None
    parts = urllib.parse.urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MocmeError(f"mirror {mirror!r}: expected an http:// or https:// base URL")
    return mirror.rstrip("/")


def download(
    name: str,
    directory: PathLike | None = None,
    mirror: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> DownloadReport:
    """Fetch benchmark ``name`` into ``directory`` (default: :func:`~mocme.data.registry.data_dir`).

    ``mirror`` (default ``$MOCME_MIRROR``) replaces the public sources by a base URL serving the
    data directory's layout. ``timeout`` bounds, in seconds, each wait to connect or receive data.
    Any failure raises :class:`~mocme.errors.MocmeError` with a one-line message. Files verified
    before the failure stay, and nothing partial is left.
    """
    from tqdm.auto import tqdm

    base = check_options(mirror, timeout)
    spec = benchmark(name)
    root = data_dir(directory)
    files = benchmark_files(spec.name)
    report = DownloadReport(spec.name, root / spec.folder)
    total = sum(f.size for f in files)
    with tqdm(total=total, desc=spec.name, unit="B", unit_scale=True, disable=None if progress else True) as bar:
        for file in files:
            bar.set_postfix_str(file.path, refresh=False)
            destination = root / file.path
            start = bar.n
            if _has_verified_copy(destination, file.sha256):
                report.present.append(file.path)
            else:
                try:
                    _fetch(file, destination, base, timeout, _FileProgress(bar, file.size))
                except OSError as err:  # the network errors are MocmeErrors by now; this is the local disk
                    raise MocmeError(f"{destination}: cannot write ({err.strerror or err})") from None
                report.downloaded.append(file.path)
            bar.update(start + file.size - bar.n)
    return report


def sha256_of(path: Path) -> str:
    """The sha256 of a file's content, decompressed first when its name ends in ``.gz``."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _has_verified_copy(destination: Path, sha256: str) -> bool:
    """Whether the copy the loader reads (the plain file when it exists, else its ``.gz``, as
    :func:`mocme.io.resolve` picks) has the published content."""
    candidate = destination if destination.exists() else destination.with_name(destination.name + ".gz")
    try:
        return candidate.is_file() and sha256_of(candidate) == sha256
    except (OSError, EOFError, zlib.error):  # unreadable or a broken .gz: fetch it again
        return False


def _fetch(file: RemoteFile, destination: Path, base: str | None, timeout: float, progress: _FileProgress) -> None:
    """Fetch one file into ``destination`` atomically: from its public source, or from the mirror."""
    if base is None:
        try:
            _fetch_plain(file.public_url, file, destination, timeout, progress)
        except _NotFound:
            raise MocmeError(f"{file.public_url}: not found (HTTP 404); the public source has moved it") from None
        return
    url = f"{base}/{urllib.parse.quote(file.path)}"
    try:
        _fetch_plain(url, file, destination, timeout, progress)
    except _NotFound:
        try:
            _fetch_gzipped(url + ".gz", file, destination, timeout, progress)
        except _NotFound:
            raise MocmeError(f"{url}: not found on the mirror (HTTP 404, also as .gz)") from None


def _fetch_plain(url: str, file: RemoteFile, destination: Path, timeout: float, progress: _FileProgress) -> None:
    with atomic_path(destination) as tmp:
        _transfer(url, tmp, timeout, progress)
        _check(url, file, sha256_of(tmp))


def _fetch_gzipped(url: str, file: RemoteFile, destination: Path, timeout: float, progress: _FileProgress) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{destination.name}.", dir=destination.parent) as scratch:
        packed = Path(scratch) / "download.gz"
        _transfer(url, packed, timeout, progress)
        with atomic_path(destination) as tmp:
            digest = hashlib.sha256()
            try:
                with gzip.open(packed, "rb") as source, open(tmp, "wb") as target:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        target.write(chunk)
            except (gzip.BadGzipFile, EOFError, zlib.error) as err:
                raise DataError(url, f"not a valid gzip file ({err}); {file.path} was not saved") from None
            _check(url, file, digest.hexdigest())


def _check(url: str, file: RemoteFile, sha256: str) -> None:
    if sha256 != file.sha256:
        raise DataError(
            url,
            f"sha256 mismatch (expected {file.sha256[:12]}..., got {sha256[:12]}...): the file is corrupted or "
            f"changed; {file.path} was not saved",
        )


class _NotFound(Exception):
    """The server answered 404."""


def _transfer(url: str, target: Path, timeout: float, progress: _FileProgress) -> None:
    """Stream ``url`` into ``target`` with pooch; network failures become one-line errors."""
    try:
        import pooch
        import requests
    except ImportError:
        raise MocmeError("'mocme download' needs pooch: pip install pooch") from None
    downloader = pooch.HTTPDownloader(
        progressbar=progress, chunk_size=_CHUNK, timeout=timeout, headers={"User-Agent": f"mocme/{package_version()}"}
    )
    try:
        downloader(url, str(target), None)
    except requests.HTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status == 404:
            raise _NotFound(url) from None
        reason = err.response.reason if err.response is not None else ""
        raise MocmeError(f"{url}: the server answered HTTP {status} {reason}".rstrip()) from None
    except requests.Timeout:
        raise MocmeError(f"{url}: no answer within {timeout:g} s; check the network, or use --mirror") from None
    except requests.RequestException as err:
        raise MocmeError(f"{url}: cannot download ({_reason(err)}); check the network, or use --mirror") from None


def _reason(err: Exception) -> str:
    """The innermost cause of a requests error, e.g. ``[Errno 111] Connection refused``."""
    text = str(err)
    if "timed out" in text.lower():
        return "timed out"
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    return errno.group(0) if errno else type(err).__name__


class _FileProgress:
    """pooch's progress-bar protocol, feeding one file's bytes into the benchmark's bar.

    It never counts past the file's size: pooch rounds chunks up and re-adds the total at the end.
    """

    def __init__(self, bar: Any, size: int):
        self.bar = bar
        self.left = size
        self.total = size

    def update(self, n: int) -> None:
        step = min(n, self.left)
        self.left -= step
        self.bar.update(step)

    def reset(self) -> None:
        """pooch resets and then adds the whole total; the cap in :meth:`update` absorbs that."""

    def close(self) -> None:
        """The benchmark's bar stays open across files."""
