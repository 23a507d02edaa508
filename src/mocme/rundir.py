"""The run directory: everything one run leaves behind, written atomically.

::

    runs/demo/
      config.yaml         the fully resolved config
      metadata.json       versions, seed, git revision, hardware, start time
      trace.jsonl         one line per epoch (losses per scorer, validation metrics, time)
      metrics.json        final validation and test metrics at the selected checkpoint
      checkpoints/
        last.pt           model, optimiser, scheduler, RNG states, epoch (written every epoch)
        best.pt           the same, at the best validation epoch
      report.html         written by 'mocme report'
      tensorboard/        when the tensorboard tracker is on
      tracking.json       the MLflow run id, when the mlflow tracker is on (so a resume continues it)
      .lock               held (flock) by the one process that trains or resumes this run
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not protected against a second writer
    fcntl = None  # type: ignore[assignment]

import numpy
import torch
import yaml

from mocme.config import RunConfig, dump_config, validate_config
from mocme.errors import ConfigError, RunDirError
from mocme.io import append_jsonl, atomic_path, read_jsonl, to_json, write_json_atomic, write_text_atomic
from mocme.version import package_version

CHECKPOINTS = ("last", "best")
LOCK_NAME = ".lock"


class RunDirectory:
    """Paths and atomic reads/writes of one run directory."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    # -- paths -----------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metadata_path(self) -> Path:
        return self.path / "metadata.json"

    @property
    def trace_path(self) -> Path:
        return self.path / "trace.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    def checkpoint_path(self, name: str) -> Path:
        return self.path / "checkpoints" / f"{name}.pt"

    # -- ownership -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's writer lock (``.lock``, an advisory ``flock``) for the duration.

        A second ``train --overwrite``, ``--resume`` or HPO trial on the same directory gets a
        one-line error instead of interleaving its checkpoints and trace with this one's. The
        lock goes away with the process, so a killed run can be resumed at once.
        """
        if fcntl is None:
            yield
            return
        folder_existed = self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # the path, or a folder above it, is a file
            raise RunDirError(f"{self.path}: cannot be a run directory ({err.strerror or err})") from None
        handle = open(self.path / LOCK_NAME, "a+")  # noqa: SIM115 (held until the end of the block)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()  # the holder's .lock stays: removing it would let a third process in beside the holder
            raise RunDirError(
                f"{self.path}: another process (pid {owner}) is training this run; wait for it to "
                "finish or use another --out"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            if not self.config_path.exists():  # no run was created here: leave the folder as it was
                (self.path / LOCK_NAME).unlink(missing_ok=True)
                if not folder_existed:
                    with contextlib.suppress(OSError):
                        self.path.rmdir()
            handle.close()  # releases the lock

    # -- creation --------------------------------------------------------------------------------
    def create(self, config: RunConfig, overwrite: bool = False, data: dict[str, Any] | None = None) -> None:
        """Start a fresh run here; an existing run is replaced only with ``overwrite``. ``data``: the
        dataset's :meth:`~mocme.data.MultiModalKG.identity`, recorded for :meth:`check_data`."""
        if self.path.exists() and self._has_content():
            if not overwrite:
                raise RunDirError(
                    f"{self.path}: run directory already exists (use --overwrite to replace it, "
                    f"or --resume {self.path} to continue it)"
                )
            if not self.config_path.exists() and not self.checkpoint_path("last").exists():
                raise RunDirError(f"{self.path}: exists and is not a run directory; refusing to delete it")
            for entry in self.path.iterdir():  # everything but the lock this process may be holding
                if entry.name == LOCK_NAME:
                    continue
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        self.remove_stale_temp_files()  # left by a creation that was killed before it wrote config.yaml
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config_path, dump_config(config))
        self.write_metadata(config, data)

    def _has_content(self) -> bool:
        """Whether anything is here besides what a creation killed before writing config.yaml leaves."""
        for entry in self.path.iterdir():
            if entry.name == LOCK_NAME:
                continue
            if entry.name == "checkpoints" and entry.is_dir() and not any(entry.iterdir()):
                continue
            if entry.is_file() and entry.name.startswith(f".{self.config_path.name}.") and entry.suffix == ".tmp":
                continue
            return True
        return False

    def stale_temp_files(self) -> list[Path]:
        """Temporary files of atomic writes that never finished (a killed process leaves them behind).

        :func:`mocme.io.atomic_path` names them ``.<target>.<random>.tmp`` beside their target; none of
        them is ever read as a checkpoint or a result.
        """
        folders = [self.path, self.path / "checkpoints"]
        return sorted(p for folder in folders if folder.is_dir() for p in folder.glob(".*.tmp") if p.is_file())

    def remove_stale_temp_files(self) -> None:
        """Delete :meth:`stale_temp_files`; only the process that writes this run may call it."""
        for path in self.stale_temp_files():
            path.unlink(missing_ok=True)

    def write_metadata(self, config: RunConfig, data: dict[str, Any] | None = None) -> None:
        """Record versions, seed, revision and the dataset's identity in ``metadata.json`` (a resume
        writes it if a kill lost it)."""
        write_json_atomic(self.metadata_path, run_metadata(config) | ({"data": data} if data else {}))

    def record_resume(self, epoch: int) -> None:
        """Append to ``metadata.json``'s ``resumes`` when, at which epoch, with which code and on
        which machine this run continues: the wall-clock of its epochs may come from several."""
        try:
            metadata = json.loads(self.metadata_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # an unreadable record is left as it is, not replaced by a partial one
        if not isinstance(metadata, dict):
            return
        earlier = metadata.get("resumes")
        part = {
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "epoch": epoch,
            "git_revision": _git_revision(),
            "hardware": hardware(),
        }
        metadata["resumes"] = [*(earlier if isinstance(earlier, list) else []), part]
        write_json_atomic(self.metadata_path, metadata)

    def check_data(self, data: dict[str, Any]) -> None:
        """Refuse a dataset other than the one the run trained on (``data``: its identity now), where
        ``metadata.json`` records one: other entity ids would silently mismatch the trained rows."""
        try:
            recorded = json.loads(self.metadata_path.read_text(encoding="utf-8")).get("data")
        except (OSError, ValueError, AttributeError):
            return  # no record (a run from before it was kept): nothing to compare
        if not isinstance(recorded, dict):
            return
        changed = [
            what
            for key, what in (("entities_sha256", "its entity list"), ("relations_sha256", "its relation list"))
            if key in recorded and recorded[key] != data[key]
        ]
        features = recorded.get("features_sha256", {})
        changed += [
            f"the {name!r} features"
            for name, digest in features.items()
            if name in data["features_sha256"] and data["features_sha256"][name] != digest
        ]
        if changed:
            raise RunDirError(
                f"{self.path}: the dataset differs from the one this run trained on ({', '.join(changed)} changed: "
                "a reordered or edited file gives entities other ids); restore it, or train again"
            )

    def load_config(self) -> RunConfig:
        if not self.config_path.exists():
            raise RunDirError(f"{self.path}: not a run directory (no config.yaml)")
        try:
            data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise RunDirError(f"{self.config_path}: cannot read the run's config ({first})") from None
        if not isinstance(data, dict):
            raise RunDirError(f"{self.config_path}: not a run config (expected a mapping of sections)")
        try:
            return validate_config(data, str(self.config_path))
        except ConfigError as err:
            raise RunDirError(str(err)) from None

    # -- trace and metrics -----------------------------------------------------------------------
    def append_trace(self, record: dict[str, Any]) -> None:
        append_jsonl(self.trace_path, record)

    def trace(self) -> list[dict[str, Any]]:
        return read_jsonl(self.trace_path)

    def truncate_trace(self, epoch: int) -> None:
        """Keep only the epoch records up to ``epoch`` (those a resumed run will not repeat)."""
        kept = [r for r in self.trace() if r.get("epoch", 0) <= epoch]
        write_text_atomic(self.trace_path, "".join(to_json(r) + "\n" for r in kept))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.metrics_path, metrics)

    def metrics(self) -> dict[str, Any]:
        if not self.metrics_path.exists():
            raise RunDirError(f"{self.path}: no metrics.json yet (the run has not finished)")
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self, name: str, state: dict[str, Any]) -> None:
        """Write ``checkpoints/<name>.pt`` atomically (temporary file, fsync, rename)."""
        with atomic_path(self.checkpoint_path(name)) as tmp:
            torch.save(state, tmp)

    def has_checkpoint(self, name: str) -> bool:
        return self.checkpoint_path(name).exists()

    def load_checkpoint(self, name: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        path = self.checkpoint_path(name)
        if not path.exists():
            raise RunDirError(f"{path}: no such checkpoint")
        try:
            state = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:  # a foreign or damaged file raises many library-specific types
            raise RunDirError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from None
        if not (isinstance(state, dict) and isinstance(state.get("model"), dict) and "train_state" in state):
            raise RunDirError(f"{path}: not a mocme checkpoint (expected the model's weights and its training state)")
        return state

    def load_weights(self, name: str, model: torch.nn.Module) -> None:
        """Load checkpoint ``name``'s weights into ``model``; a checkpoint of another shape is a one-line error."""
        state = self.load_checkpoint(name, next(model.parameters()).device)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            first = str(err).splitlines()[-1].strip()[:160]
            raise RunDirError(
                f"{self.checkpoint_path(name)}: does not fit the model config.yaml describes ({first})"
            ) from None

    def checkpoint_epoch(self, name: str) -> int | None:
        """The number of epochs completed when checkpoint ``name`` was written; ``None`` if there is none."""
        if not self.has_checkpoint(name):
            return None
        return int(self.load_checkpoint(name)["train_state"]["epoch"])


class WorkerRunDirectory(RunDirectory):
    """The run directory as the processes other than rank 0 see it: they read it, rank 0 writes it."""

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        yield  # rank 0 holds the run's lock

    def create(self, config: RunConfig, overwrite: bool = False, data: dict[str, Any] | None = None) -> None:
        pass

    def write_metadata(self, config: RunConfig, data: dict[str, Any] | None = None) -> None:
        pass

    def record_resume(self, epoch: int) -> None:
        pass

    def remove_stale_temp_files(self) -> None:
        pass

    def append_trace(self, record: dict[str, Any]) -> None:
        pass

    def truncate_trace(self, epoch: int) -> None:
        pass

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        pass

    def save_checkpoint(self, name: str, state: dict[str, Any]) -> None:
        pass


def run_metadata(config: RunConfig) -> dict[str, Any]:
    """Versions, seed, git revision and hardware, for the record."""
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": config.seed,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        # the global batch is processes × training.batch_size
        "processes": torch.distributed.get_world_size() if _in_process_group() else 1,
        "versions": {
            "mocme": package_version(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
        },
        "git_revision": _git_revision(),
        "hardware": hardware(),
    }


def hardware() -> dict[str, Any]:
    """The machine this process runs on: a run resumed elsewhere records each part's (``resumes``)."""
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _in_process_group() -> bool:
    """Whether this process is one of a ``torch.distributed`` group (a build may lack distributed)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _git_revision() -> str | None:
    """The source tree's git commit (with ``-dirty`` when modified), or ``None`` outside a checkout."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")
