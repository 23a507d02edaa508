"""``mocme report``: the HTML report of a run, its figures and weights, and how it renders in Chromium."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import torch

from mocme import pipeline
from mocme.cli import main
from mocme.config import validate_config
from mocme.plots import grouped_bars, save_figure, style, subplots
from mocme.report import write_report
from mocme.report.figures import short_label
from mocme.report.weights import modality_weights

HEADINGS = ["Metrics", "Training", "Relation categories", "Seen in training", "By training degree", "Modalities", "Run"]
EXPECTED_MOCME_FIGURES = {
    "loss",
    "validation metrics",
    "gradient norm",
    "schedules",
    "Hits@k by category",
    "MRR by degree",
    "alpha distribution",
    "alpha by relation",
}


def tiny_config(model: str, **dataset: Any) -> Any:
    return validate_config(
        {
            "seed": 5,
            "threads": 1,  # a tiny model trains several times faster on one thread than on two
            "dataset": {"synthetic": {"num_entities": 150, "num_relations": 3}, **dataset},
            "model": {"name": model, "dim": 12, "relation_dim": 4},
            "training": {"epochs": 3, "eval_every": 1, "batch_size": 64, "num_negatives": 16},
        }
    )


@pytest.fixture(scope="module", autouse=True)
def _restore_threads():
    """The runs here set torch's (process-wide) thread count; give the other test modules theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mocme_run(tmp_path_factory) -> pipeline.RunResult:
    return pipeline.train(tiny_config("mocme"), tmp_path_factory.mktemp("report") / "mocme")


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory) -> Path:
    return pipeline.train(tiny_config("distmult"), tmp_path_factory.mktemp("report") / "distmult").directory.path


@pytest.fixture(scope="module")
def mocme_report(mocme_run) -> Path:
    return write_report(mocme_run.directory.path)


class Page(HTMLParser):
    """The parts of a report page the tests look at."""

    def __init__(self, text: str):
        super().__init__()
        self.images: dict[str, str] = {}
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        self._in_h2 = tag == "h2"
        if tag == "img":
            self.images[attributes["alt"]] = attributes["src"]
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


def read_page(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


# -- the report ------------------------------------------------------------------------------------
def test_mocme_report_holds_every_part_and_nothing_external(mocme_run, mocme_report):
    assert mocme_report == mocme_run.directory.path / "report.html"
    text = mocme_report.read_text(encoding="utf-8")
    page = Page(text)
    assert set(page.images) == EXPECTED_MOCME_FIGURES
    for source in page.images.values():
        assert source.startswith("data:image/svg+xml;base64,")
        svg = ElementTree.fromstring(base64.b64decode(source.split(",", 1)[1]))  # well-formed SVG
        assert svg.tag.endswith("svg")
    assert all(url.startswith("data:") for url in page.urls)
    assert "script" not in page.tags
    assert page.headings == HEADINGS
    assert "there is no unseen group" in text  # the synthetic split keeps every entity in training
    # config (collapsed), metadata, the three tie policies and the breakdowns
    assert "<details><summary>Resolved config (config.yaml)</summary>" in text
    assert "interaction: tucker" in text
    assert "git_revision" in text and "versions.torch" in text
    for label in ("realistic", "optimistic", "pessimistic", "answer has it", "N-N"):
        assert label in text
    valid_mrr = mocme_run.metrics["valid"]["both"]["realistic"]["inverse_harmonic_mean_rank"]
    assert f"{valid_mrr:.4f}" in text


def test_the_seen_section_gives_each_group_of_the_inductive_case():
    from mocme.report.build import _seen_section

    def group(mrr: float, count: int, triples: int) -> dict:
        return {"both": {"realistic": {"inverse_harmonic_mean_rank": mrr}, "count": count}, "triples": triples}

    metrics = {"test": {"by_seen": {"seen": group(0.45, 4550, 2275), "unseen": group(0.03, 776, 388)}}}
    section = _seen_section(metrics)
    assert "Seen in training" in section and "inductive case" in section
    assert "query or answer unseen" in section and "388" in section and "0.0300" in section
    assert _seen_section({"test": {}}) == ""


def test_baseline_report_omits_the_weights_and_says_why(baseline_run, tmp_path):
    out = write_report(baseline_run, tmp_path / "nested" / "baseline.html")
    page = read_page(out)
    assert set(page.images) == EXPECTED_MOCME_FIGURES - {"alpha distribution", "alpha by relation"}
    assert "distmult is a structure-only baseline" in out.read_text(encoding="utf-8")
    assert not (baseline_run / "report.html").exists()


def test_unfinished_run_still_gets_its_curves(mocme_run, tmp_path):
    run = tmp_path / "unfinished"
    shutil.copytree(mocme_run.directory.path, run)
    (run / "metrics.json").unlink()
    (run / "report.html").unlink(missing_ok=True)
    text = write_report(run).read_text(encoding="utf-8")
    assert "the run has not finished" in text
    assert {"loss", "validation metrics", "alpha distribution"} <= set(Page(text).images)


def test_structure_only_mocme_has_no_weights_to_show(tmp_path):
    run = pipeline.train(tiny_config("mocme", modalities=[]), tmp_path / "run").directory.path
    page = read_page(write_report(run))
    assert "alpha distribution" not in page.images and "loss" in page.images
    assert "structural modality only" in (run / "report.html").read_text(encoding="utf-8")


def test_weights_are_left_out_with_a_warning_when_the_dataset_cannot_be_loaded(mocme_run, tmp_path, capsys):
    run = tmp_path / "moved"
    shutil.copytree(mocme_run.directory.path, run)
    config = (run / "config.yaml").read_text(encoding="utf-8")
    config = config.replace("name: synthetic", "name: UMLS").replace("data_dir: null", f"data_dir: {tmp_path / 'gone'}")
    (run / "config.yaml").write_text(config, encoding="utf-8")
    assert main(["report", str(run)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(run / "report.html")
    assert err.startswith("warning: ") and "modality weights left out" in err and err.count("\n") == 1
    text = (run / "report.html").read_text(encoding="utf-8")
    assert "could not be loaded" in text and "loss" in Page(text).images


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("<http://dbpedia.org/ontology/country>", "country"),
        ("<http://dbpedia.org/ontology/country>⁻¹", "country⁻¹"),
        ("<http://www.w3.org/2000/01/rdf-schema#seeAlso>", "seeAlso"),
        ("/film/film/genre", "/film/film/genre"),
        ("/people/person/spouse_s./people/marriage/type_of_union", "…./people/marriage/type_of_union"),
        ("<b>", "<b>"),  # brackets are stripped from URIs only
    ],
)
def test_relation_labels_are_short(name, label):
    assert short_label(name) == label


def test_a_run_without_a_validation_split_gets_a_report_that_says_so(tmp_path):
    spec = {"num_entities": 150, "num_relations": 3, "valid_fraction": 0.0}
    config = validate_config({**tiny_config("mocme").model_dump(), "dataset": {"synthetic": spec}})
    run = pipeline.train(config, tmp_path / "novalid")
    text = html.unescape(write_report(run.directory.path).read_text(encoding="utf-8"))
    assert "No validation split: the last epoch's checkpoint is used" in text


def test_the_report_never_replaces_a_file_of_its_run(mocme_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(mocme_run.directory.path, run)
    for target in (run / "metrics.json", run / "checkpoints" / "r.html"):
        assert main(["report", str(run), "--out", str(target)]) == 2
        assert "the run" in capsys.readouterr().err
    assert (run / "metrics.json").read_bytes() == (mocme_run.directory.path / "metrics.json").read_bytes()


def test_modality_weights_are_distributions_over_available_modalities(mocme_run):
    kg, model = mocme_run.kg, mocme_run.model
    weights = modality_weights(model, kg)
    n, m = kg.num_entities, len(model.modalities)
    assert weights.modalities == ["structure", "text", "visual"]
    assert weights.alpha.shape == weights.available.shape == (n, m)
    assert torch.allclose(weights.alpha.sum(1), torch.ones(n), atol=1e-5)
    assert (weights.alpha[~weights.available] == 0).all()
    assert torch.equal(weights.available[:, 1], kg.modalities["text"].mask)
    assert int(weights.queries.sum()) == 2 * len(kg.valid)
    assert torch.allclose(weights.by_relation.sum(1), torch.ones(len(weights.relations)), atol=1e-5)
    first = int(kg.valid[0, 1])
    assert kg.relations.name(first) in weights.relations and any(r.endswith("⁻¹") for r in weights.relations)


def test_names_with_a_dollar_are_drawn_as_they_are(mocme_run):
    import dataclasses

    from mocme.report.figures import alpha_by_relation, alpha_distribution

    weights = modality_weights(mocme_run.model, mocme_run.kg)
    odd = dataclasses.replace(
        weights,
        relations=[f"a$\\foo$b{i}" for i in range(len(weights.relations))],
        modalities=["structure", "$text$", "visual"],
    )
    for draw in (alpha_by_relation, alpha_distribution):
        draw(odd).canvas.draw()  # maths mode would raise on the unknown symbol \foo


# -- the command -----------------------------------------------------------------------------------
def test_command_writes_where_asked_and_prints_the_path(mocme_run, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(mocme_run.directory.path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob(".r.html.*"))  # no temporary file left behind


@pytest.mark.parametrize("case", ["not a run", "out is a directory", "no matplotlib", "corrupt metrics"])
def test_command_errors_are_one_line(mocme_run, tmp_path, capsys, monkeypatch, case):
    args = ["report", str(mocme_run.directory.path), "--out", str(tmp_path / "r.html")]
    expected = {
        "not a run": "not a run directory",
        "out is a directory": "is a directory",
        "no matplotlib": "pip install 'mocme[plot]'",
        "corrupt metrics": "metrics.json: cannot read",
    }[case]
    if case == "not a run":
        args[1] = str(tmp_path)
    elif case == "out is a directory":
        args[-1] = str(tmp_path)
    elif case == "corrupt metrics":
        run = tmp_path / "run"
        shutil.copytree(mocme_run.directory.path, run, ignore=shutil.ignore_patterns("checkpoints"))
        (run / "metrics.json").write_text('{"valid": ', encoding="utf-8")
        args[1] = str(run)
    else:
        monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err
    assert not (tmp_path / "r.html").exists()


def test_help_describes_the_command(capsys):
    assert main(["report", "--help"]) == 0
    assert "self-contained HTML report" in capsys.readouterr().out


# -- plotting helpers ------------------------------------------------------------------------------
def test_grouped_bars_draws_one_bar_per_value_and_saves(tmp_path):
    with style():
        fig, ax = subplots()
        grouped_bars(ax, ["DB15K", "MKG-W"], {"MoCME": [0.4, 0.35], "TuckER": [0.3, float("nan")]}, title="MRR")
        assert len(ax.patches) == 4
        assert [t.get_text() for t in ax.get_xticklabels()] == ["DB15K", "MKG-W"]
        assert {t.get_text() for t in ax.get_legend().get_texts()} == {"MoCME", "TuckER"}
        with pytest.raises(ValueError, match="has 1 values for 2 groups"):
            grouped_bars(ax, ["a", "b"], {"short": [1.0]})
    save_figure(fig, tmp_path / "bars.png")
    assert (tmp_path / "bars.png").read_bytes().startswith(b"\x89PNG")
    for suffix in ("svg", "pdf"):  # no creation date: the same figure gives the same bytes
        save_figure(fig, tmp_path / f"a.{suffix}")
        save_figure(fig, tmp_path / f"b.{suffix}")
        assert (tmp_path / f"a.{suffix}").read_bytes() == (tmp_path / f"b.{suffix}").read_bytes()
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()


# -- in a browser ----------------------------------------------------------------------------------
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]
ACTIVE_PORT = re.compile(r"(\d+)\n(/devtools/browser/[0-9a-f-]{36})\s*$")
"""The whole of the DevToolsActivePort file Chromium writes: its port, then the browser's endpoint."""
PAGE_FACTS = """JSON.stringify({
  images: Array.from(document.images).map(i => ({
    alt: i.alt, complete: i.complete, width: i.naturalWidth, shown: i.getBoundingClientRect().width})),
  headings: Array.from(document.querySelectorAll("h2")).map(h => h.textContent),
})"""


class DevTools:
    """A minimal client of the Chrome DevTools Protocol over one WebSocket (RFC 6455, text frames)."""

    def __init__(self, url: str, timeout: float):
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.stream = self.sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status = self.stream.readline()
        if b" 101 " not in status:
            raise ConnectionError(f"DevTools refused the WebSocket: {status!r}")
        while self.stream.readline() not in (b"\r\n", b""):
            pass
        self.last_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; events that arrive meanwhile go to ``events``."""
        self.last_id += 1
        message: dict[str, Any] = {"id": self.last_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._send(json.dumps(message).encode())
        while True:
            reply = self._receive()
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._receive())

    def close(self) -> None:
        self.stream.close()
        self.sock.close()

    def _send(self, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            length = bytes([0x80 | n])
        elif n < 1 << 16:
            length = bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            length = bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81]) + length + mask + masked)

    def _receive(self) -> dict[str, Any]:
        data = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n >= 126:
                n = int.from_bytes(self._read(2 if n == 126 else 8), "big")
            chunk = self._read(n)
            if first & 0x0F == 8:
                raise ConnectionError("DevTools closed the connection")
            data += chunk
            if first & 0x80:  # final fragment
                return json.loads(data)

    def _read(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise ConnectionError("the DevTools connection ended")
        return data


def open_in_chromium(paths: list[Path], tmp_path: Path) -> list[tuple[dict[str, Any], list[str]]]:
    """Load each page in headless Chromium: its facts (images, headings) and its console errors."""
    profile = tmp_path / "profile"
    browser = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active, deadline = profile / "DevToolsActivePort", time.monotonic() + 20
        while not (found := ACTIVE_PORT.match(active.read_text() if active.exists() else "")):
            assert browser.poll() is None, "chromium exited"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port, endpoint = found.groups()
        devtools = DevTools(f"ws://127.0.0.1:{port}{endpoint}", timeout=20)
        results = []
        for path in paths:
            target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
            session = devtools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                devtools.call(f"{domain}.enable", session)
            devtools.events.clear()
            devtools.call("Page.navigate", session, url=path.as_uri())
            devtools.wait_for("Page.loadEventFired")
            facts = devtools.call("Runtime.evaluate", session, expression=PAGE_FACTS, returnByValue=True)
            results.append((json.loads(facts["result"]["value"]), page_errors(devtools.events)))
            devtools.call("Target.closeTarget", targetId=target)
        devtools.close()
        return results
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()


def page_errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries and requests that leave the file."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(f"console.{params['type']}: {params['args']}")
        elif method == "Runtime.exceptionThrown":
            errors.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"log: {params['entry']['text']}")
        elif method == "Network.requestWillBeSent" and not re.match(r"(file|data|about):", params["request"]["url"]):
            errors.append(f"request: {params['request']['url']}")
    return errors


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_report_renders_in_chromium_with_no_console_errors(mocme_report, tmp_path):
    broken = tmp_path / "broken.html"  # proves the harness sees errors
    broken.write_text('<script>console.error("boom")</script><img alt="gone" src="missing.png">', encoding="utf-8")
    (facts, errors), (_, broken_errors) = open_in_chromium([mocme_report, broken], tmp_path)
    assert errors == []
    assert {image["alt"] for image in facts["images"]} == EXPECTED_MOCME_FIGURES
    for image in facts["images"]:
        assert image["complete"] and image["width"] > 100 and image["shown"] > 100, image
    assert facts["headings"] == HEADINGS
    assert any("boom" in e for e in broken_errors) and any("ERR_FILE_NOT_FOUND" in e for e in broken_errors)
