"""``mocme download`` against a local HTTP server: layout, checksums, .gz mirrors, failures, re-runs."""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mocme import download as fetch
from mocme.cli import main
from mocme.data.registry import BENCHMARKS, is_available, load_benchmark
from mocme.errors import DataError, MocmeError

UMLS_FILES = ["entity2text.txt", "entity2textlong.txt", "relation2text.txt", "train.tsv", "dev.tsv", "test.tsv"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on a free port of 127.0.0.1; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def _no_proxy_no_env(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)


@pytest.fixture(scope="module")
def mirror(data_dir) -> Iterator[str]:
    """The shared data folder as a mirror: files over 1 MiB only as ``.gz``."""
    with serve(data_dir) as url:
        yield url


def umls_copy(data_dir: Path, target: Path) -> Path:
    """A mirror folder holding a copy of UMLS, to be damaged by a test."""
    shutil.copytree(data_dir / "UMLS", target / "UMLS")
    return target


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders left by a download."""
    return sorted(p.name for p in folder.rglob(".*"))


# -- manifest ---------------------------------------------------------------------------------------
def test_every_benchmark_downloads_what_its_loader_reads():
    for spec in BENCHMARKS.values():
        paths = [f.path for f in fetch.benchmark_files(spec.name)]
        core = [f"{spec.folder}/{file}" for file in spec.files()]
        assert paths[-len(core) :] == core, spec.name  # fetched last: a partial folder is not available
        assert len(set(paths)) == len(paths)
    assert "WN18RR/entity2text.txt" in [f.path for f in fetch.benchmark_files("WN18")]
    assert {"UMLS/entity2text.txt", "UMLS/entity2textlong.txt"} <= {f.path for f in fetch.benchmark_files("umls")}
    assert {f.repo for f in fetch.manifest()} <= set(fetch.LICENCES)


def test_public_url_is_the_pinned_raw_file():
    (file,) = [f for f in fetch.manifest() if f.path == "UMLS/train.tsv"]
    assert file.public_url == (
        "https://raw.githubusercontent.com/yao8839836/kg-bert/0b8f625108efcb9b43603b6840f2548ff3d3c973/data/umls/train.tsv"
    )


def test_packaged_manifest_matches_the_shared_data(data_dir):
    rows = [line.split("\t") for line in (data_dir / "MANIFEST.tsv").read_text().splitlines()[1:]]
    expected = [(p.removesuffix(".gz"), int(size), sha, source) for p, _, size, sha, source in rows]
    packaged = [(f.path, f.size, f.sha256, f"{f.repo}@{f.commit}:{f.source_path}") for f in fetch.manifest()]
    assert packaged == expected


def test_mirror_url_is_checked(monkeypatch):
    assert fetch.mirror_url(None) is None
    assert fetch.mirror_url("http://host/data/") == "http://host/data"
    monkeypatch.setenv(fetch.MIRROR_ENV, "https://example.org/mocme")
    assert fetch.mirror_url(None) == "https://example.org/mocme"
    with pytest.raises(MocmeError, match="http"):
        fetch.mirror_url("/some/folder")


# -- downloads from a local mirror --------------------------------------------------------------------
def test_download_gives_the_layout_the_loader_reads(data_dir, mirror, tmp_path):
    report = fetch.download("UMLS", tmp_path, mirror=mirror, progress=False)
    assert sorted(report.downloaded) == sorted(f"UMLS/{f}" for f in UMLS_FILES) and report.present == []
    for name in UMLS_FILES:
        assert (tmp_path / "UMLS" / name).read_bytes() == (data_dir / "UMLS" / name).read_bytes()
    assert is_available(BENCHMARKS["UMLS"], tmp_path)
    ours, theirs = load_benchmark("UMLS", tmp_path), load_benchmark("UMLS", data_dir)
    assert ours.entity_text == theirs.entity_text and ours.entity_text is not None
    assert leftovers(tmp_path) == []


def test_gzipped_mirror_files_are_stored_uncompressed_and_verified(mirror, tmp_path):
    """WN18 (train2id.txt only as .gz on the mirror) also needs ../WN18RR/entity2text.txt for its text."""
    report = fetch.download("WN18", tmp_path, mirror=mirror, progress=False)
    assert "WN18RR/entity2text.txt" in report.downloaded
    assert (tmp_path / "WN18" / "train2id.txt").is_file() and not (tmp_path / "WN18" / "train2id.txt.gz").exists()
    kg = load_benchmark("WN18", tmp_path)
    assert (kg.num_entities, kg.num_relations, len(kg.train), len(kg.valid), len(kg.test)) == BENCHMARKS["WN18"].sizes
    assert kg.entity_text is not None and all(kg.entity_text)


def test_rerun_skips_verified_files_and_replaces_damaged_ones(data_dir, mirror, tmp_path):
    fetch.download("UMLS", tmp_path, mirror=mirror, progress=False)
    again = fetch.download("UMLS", tmp_path, mirror=mirror, progress=False)
    assert again.downloaded == [] and len(again.present) == len(UMLS_FILES)

    (tmp_path / "UMLS" / "dev.tsv").write_text("damaged\n")
    dev = tmp_path / "UMLS" / "test.tsv"  # a gzipped local copy counts as present
    dev.with_name("test.tsv.gz").write_bytes(gzip.compress(dev.read_bytes()))
    dev.unlink()
    repaired = fetch.download("UMLS", tmp_path, mirror=mirror, progress=False)
    assert repaired.downloaded == ["UMLS/dev.tsv"]
    assert (tmp_path / "UMLS" / "dev.tsv").read_bytes() == (data_dir / "UMLS" / "dev.tsv").read_bytes()

    # a damaged plain file beside an intact .gz: the loader reads the plain one, so it is fetched again
    train = tmp_path / "UMLS" / "train.tsv"
    train.with_name("train.tsv.gz").write_bytes(gzip.compress(train.read_bytes()))
    train.write_text("damaged\n")
    assert fetch.download("UMLS", tmp_path, mirror=mirror, progress=False).downloaded == ["UMLS/train.tsv"]
    assert train.read_bytes() == (data_dir / "UMLS" / "train.tsv").read_bytes()


def test_public_sources_are_used_without_a_mirror(data_dir, tmp_path, monkeypatch):
    """Serve UMLS as GitHub's raw server lays it out (owner/repo/commit/path) and point PUBLIC_URL at it."""
    for file in fetch.benchmark_files("UMLS"):
        target = tmp_path / "github" / file.repo / file.commit / file.source_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / file.path, target)
    with serve(tmp_path / "github") as url:
        monkeypatch.setattr(fetch, "PUBLIC_URL", url + "/{repo}/{commit}/{path}")
        report = fetch.download("UMLS", tmp_path / "data", progress=False)
    assert len(report.downloaded) == len(UMLS_FILES) and is_available(BENCHMARKS["UMLS"], tmp_path / "data")


def test_a_file_gone_from_the_public_source_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "github").mkdir()
    with serve(tmp_path / "github") as url:  # an empty server: every public file answers 404
        monkeypatch.setattr(fetch, "PUBLIC_URL", url + "/{repo}/{commit}/{path}")
        code = main(["download", "UMLS", "--to", str(tmp_path / "data"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "not found (HTTP 404)" in err and len(err.strip().splitlines()) == 1, err


def test_mirror_from_environment_and_data_dir_from_mocme_data(mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fetch.MIRROR_ENV, mirror)
    monkeypatch.setenv("MOCME_DATA", str(tmp_path))
    assert main(["download", "UMLS", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Apache-2.0" in out and "6 downloaded" in out
    assert is_available(BENCHMARKS["UMLS"], tmp_path)


def test_json_report_names_the_benchmark_and_its_sources(mirror, tmp_path, capsys):
    assert main(["download", "umls", "--to", str(tmp_path), "--mirror", mirror, "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)["downloads"]
    assert report["name"] == "UMLS" and len(report["downloaded"]) == len(UMLS_FILES)
    assert any("yao8839836/kg-bert" in note and "Apache-2.0" in note for note in report["sources"])


# -- failures -------------------------------------------------------------------------------------------
def test_corrupted_file_is_a_one_line_error_and_leaves_nothing(data_dir, tmp_path, capsys):
    source = umls_copy(data_dir, tmp_path / "mirror")
    damaged = bytearray((source / "UMLS" / "train.tsv").read_bytes())
    damaged[100] ^= 1
    (source / "UMLS" / "train.tsv").write_bytes(bytes(damaged))
    with serve(source) as url:
        code = main(["download", "UMLS", "--to", str(tmp_path / "data"), "--mirror", url])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert "sha256 mismatch" in err and "UMLS/train.tsv" in err
    folder = tmp_path / "data" / "UMLS"
    assert not (folder / "train.tsv").exists() and leftovers(tmp_path / "data") == []
    assert not is_available(BENCHMARKS["UMLS"], tmp_path / "data")


def test_corrupted_gzip_on_the_mirror(data_dir, tmp_path):
    source = umls_copy(data_dir, tmp_path / "mirror")
    train = source / "UMLS" / "train.tsv"
    train.with_name("train.tsv.gz").write_bytes(gzip.compress(train.read_bytes())[:-100])  # truncated
    train.unlink()
    with serve(source) as url, pytest.raises(DataError, match=r"train\.tsv\.gz: not a valid gzip file"):
        fetch.download("UMLS", tmp_path / "data", mirror=url, progress=False)
    assert not (tmp_path / "data" / "UMLS" / "train.tsv").exists() and leftovers(tmp_path / "data") == []


def test_file_missing_on_the_mirror_leaves_the_benchmark_unavailable(data_dir, tmp_path):
    source = umls_copy(data_dir, tmp_path / "mirror")
    (source / "UMLS" / "test.tsv").unlink()
    with serve(source) as url, pytest.raises(MocmeError, match=r"test\.tsv: not found on the mirror"):
        fetch.download("UMLS", tmp_path / "data", mirror=url, progress=False)
    assert (tmp_path / "data" / "UMLS" / "train.tsv").is_file()  # verified files stay for the re-run
    assert not is_available(BENCHMARKS["UMLS"], tmp_path / "data")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_closed_port_is_a_clear_error(tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    assert main(["download", "UMLS", "--to", str(tmp_path), "--mirror", url, "--timeout", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {url}/UMLS/") and "cannot download" in err and "\n" not in err
    assert leftovers(tmp_path) == []


def test_silent_server_fails_within_the_timeout(tmp_path):
    """A server that accepts connections (the kernel does, from the listen backlog) but never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(MocmeError, match=r"^http://127\.0\.0\.1:\d+/UMLS/\S+: no answer within 0\.5 s"):
            fetch.download("UMLS", tmp_path, mirror=url, timeout=0.5, progress=False)
    assert time.monotonic() - started < 30  # a generous bound: this guards against a hang, not speed
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs when the listen backlog is full")
def test_connect_timeout_when_nobody_accepts(tmp_path):
    """A listener whose backlog is full drops new connection attempts, as a black-holed host does."""
    with socket.socket() as full, socket.socket() as filler:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        filler.connect(full.getsockname())
        url = f"http://127.0.0.1:{full.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(MocmeError, match=r"^http://127\.0\.0\.1:\d+/UMLS/\S+: no answer within 0\.5 s"):
            fetch.download("UMLS", tmp_path, mirror=url, timeout=0.5, progress=False)
    assert time.monotonic() - started < 30


def test_unroutable_host_fails_within_the_timeout(tmp_path):
    """192.0.2.1 (TEST-NET-1) is never routed on the internet; whatever this network does with it
    (drop, refuse, or intercept), the error is one clear line and comes within the timeout."""
    started = time.monotonic()
    with pytest.raises(MocmeError, match=r"^http://192\.0\.2\.1/UMLS/\S+: "):
        fetch.download("UMLS", tmp_path, mirror="http://192.0.2.1", timeout=0.5, progress=False)
    assert time.monotonic() - started < 30


def test_unknown_benchmark_and_bad_timeout(capsys, tmp_path):
    assert main(["download", "NOPE", "--to", str(tmp_path)]) == 2
    assert "unknown benchmark 'NOPE'" in capsys.readouterr().err
    with pytest.raises(MocmeError, match="timeout"):
        fetch.download("UMLS", tmp_path, mirror="http://127.0.0.1:9", timeout=0)


# -- listing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["download"], ["download", "--list"]])
def test_listing_shows_sizes_and_licences(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    for name in BENCHMARKS:
        assert name in out
    assert "Apache-2.0" in out and "BSD-3-Clause" in out and "no licence stated" in out and " MB" in out


def test_download_explains_itself(capsys):
    assert main(["download", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--mirror" in out and "--to" in out and "sha256" in out
