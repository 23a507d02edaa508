"""The documentation site: it builds with ``mkdocs build --strict`` and its generated pages follow the code."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATORS = ROOT / "docs" / "_gen"
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing() -> list[str]:
    missing = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


needs_mkdocs = pytest.mark.skipif(bool(_missing()), reason=f"the 'docs' extra is not installed ({_missing()})")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with ``--strict`` (any warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    return out


def _page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


@needs_mkdocs
def test_every_config_field_is_in_the_reference(site: Path) -> None:
    from pydantic import BaseModel

    from mocme.config import RunConfig

    page = _page(site, "configuration")

    def keys(model: type[BaseModel], prefix: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                out += keys(annotation, f"{prefix}{name}.")
            else:
                out.append(f"{prefix}{name}")
        return out

    missing = [key for key in keys(RunConfig, "") if f"<code>{key}</code>" not in page]
    assert not missing
    assert "<code>training.egns.temperature_start</code>" in page
    assert "<code>dataset.features.NAME.path</code>" in page


@needs_mkdocs
def test_every_command_is_in_the_cli_reference(site: Path) -> None:
    import typer.main

    from mocme.cli import app

    page = _page(site, "cli")
    root = typer.main.get_command(app)
    context = root.make_context("mocme", [], resilient_parsing=True)
    for name in root.list_commands(context):
        command = root.get_command(context, name)
        assert f'id="mocme-{name}"' in page, name
        for sub in getattr(command, "list_commands", lambda _: [])(context):
            assert f'id="mocme-{name}-{sub}"' in page, f"{name} {sub}"


@needs_mkdocs
def test_api_reference_documents_the_public_api(site: Path) -> None:
    assert 'id="mocme.api.train"' in _page(site, "api/mocme")
    assert 'id="mocme.models.mocme.MoCME"' in _page(site, "api/models")
    assert 'id="mocme.training.weighting.egns_weights"' in _page(site, "api/training")
    assert 'id="mocme.data.kg.MultiModalKG"' in _page(site, "api/data")


def _benchmarks_page():
    sys.path.insert(0, str(GENERATORS))
    try:
        from benchmarks_page import benchmarks_markdown
    finally:
        sys.path.remove(str(GENERATORS))
    return benchmarks_markdown


def test_benchmarks_page_without_benchmarks_md(tmp_path: Path) -> None:
    text = _benchmarks_page()(tmp_path)
    assert "Results pending" in text


def test_benchmarks_page_includes_benchmarks_md(tmp_path: Path) -> None:
    (tmp_path / "BENCHMARKS.md").write_text(
        "# Benchmarks\n\nSee [the method](docs/method.md), [a result](benchmarks/results/x.md) and "
        "[PyKEEN](https://pykeen.readthedocs.io).\n\n```text\n# not a heading [x](y.md)\n```\n",
        encoding="utf-8",
    )
    text = _benchmarks_page()(tmp_path)
    assert text.startswith("## Benchmarks")
    assert "[the method](method.md)" in text
    assert "a result (`benchmarks/results/x.md`)" in text
    assert "[PyKEEN](https://pykeen.readthedocs.io)" in text
    assert "# not a heading [x](y.md)" in text


def test_benchmarks_page_draws_svg_figures_inline(tmp_path: Path) -> None:
    (tmp_path / "fig").mkdir()
    (tmp_path / "fig" / "a.svg").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg">\n\n<rect/>\n</svg>\n',
        encoding="utf-8",
    )
    (tmp_path / "BENCHMARKS.md").write_text("![Results](fig/a.svg)\n\n![Later](fig/missing.svg)\n", encoding="utf-8")
    text = _benchmarks_page()(tmp_path)
    assert (
        '<figure class="mocme-figure" title="Results">\n<svg xmlns="http://www.w3.org/2000/svg">\n<rect/>\n</svg>\n</figure>'
        in text
    )
    assert "<?xml" not in text
    assert "*Figure not built yet: Later*" in text


ARCHITECTURE = ROOT / "docs" / "architecture.md"
UPWARD = {("mocme.data.loading", "mocme.interop.pykeen")}
"""The imports that run back up the stack, each named on the architecture page."""


def _modules() -> list[str]:
    """Every module and package of mocme, by dotted name (the root as ``mocme``)."""
    names = []
    for path in sorted((ROOT / "src" / "mocme").rglob("*.py")):
        parts = path.relative_to(ROOT / "src").with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _layers() -> dict[str, int]:
    """Each module named in the stack table of the architecture page -> its row (0 is the top)."""
    rows = [line for line in ARCHITECTURE.read_text().splitlines() if line.startswith("|")][2:]
    layers: dict[str, int] = {}
    for index, row in enumerate(rows):
        modules = row.split("|")[2]
        for name in re.findall(r"`(mocme[\w.]*)`", modules):
            layers[name] = index
    return layers


def _imports(module: str) -> set[str]:
    """The mocme modules that ``module`` imports anywhere in its code (type-checking imports too)."""
    parts = module.split(".")
    path = ROOT / "src" / Path(*parts)
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mocme"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("mocme"))
    return found & set(_modules())


def test_the_architecture_page_names_every_module_and_only_real_ones() -> None:
    named = set(re.findall(r"`(mocme[\w.]*)`", ARCHITECTURE.read_text()))
    assert set(_modules()) - named == set(), "modules missing from docs/architecture.md"
    assert {name for name in named if not name.startswith(tuple(_modules()))} == set()
    assert set(_modules()) <= set(_layers()), "every module has its row in the stack table"
    assert "architecture.md" in (ROOT / "mkdocs.yml").read_text()


def test_imports_run_down_the_stack_of_the_architecture_page() -> None:
    layers = _layers()
    upward = {
        (module, target)
        for module in _modules()
        for target in _imports(module)
        if layers[target] < layers[module] and target != "mocme"
    }
    assert upward == UPWARD
