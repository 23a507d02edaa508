"""Experiment tracking: TensorBoard event files and the MLflow store hold what the run wrote."""

from __future__ import annotations

import json
import sys

import pytest

from mocme import pipeline
from mocme.cli import main
from mocme.config import load_config
from mocme.extras import MissingExtraError
from mocme.tracking import Tracking, config_params, split_values

TINY = [
    "dataset.synthetic.num_entities=100",
    "dataset.synthetic.num_relations=3",
    "model.dim=8",
    "model.relation_dim=4",
    "training.epochs=2",
    "training.eval_every=1",
    "training.batch_size=256",
]
MRR = "both.realistic.inverse_harmonic_mean_rank"


class Recorder:
    """A tracker that keeps every call, to check what the pipeline sends."""

    def __init__(self):
        self.calls: list[tuple] = []

    def start(self, params, resumed_at):
        self.calls.append(("start", params, resumed_at))

    def log_metrics(self, metrics, step):
        self.calls.append(("metrics", metrics, step))

    def log_summary(self, metrics, tags, step):
        self.calls.append(("summary", metrics, tags, step))

    def close(self, status):
        self.calls.append(("close", status))


def test_trackers_receive_plain_numbers_and_strings_in_order(tmp_path, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(Tracking, "for_run", classmethod(lambda cls, config, directory: cls([recorder])))
    result = pipeline.train(load_config(overrides=TINY), tmp_path / "run")
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["start", "metrics", "metrics", "summary", "close"]
    start, first, second, summary, close = recorder.calls
    assert start[1]["model.dim"] == "8" and start[1]["tracking.backends"] == "[]" and start[2] == 0
    assert all(isinstance(v, str) for v in start[1].values())
    assert [first[2], second[2]] == [1, 2]
    assert {"loss", "lr", f"valid.{MRR}"} <= set(first[1])
    for metrics in (first[1], second[1], summary[1]):
        assert all(type(v) is float for v in metrics.values())
    assert summary[1][f"test.{MRR}"] == pytest.approx(
        result.metrics["test"]["both"]["realistic"]["inverse_harmonic_mean_rank"]
    )
    assert not any("by_relation_category" in key for key in summary[1])
    assert summary[2]["model"] == "mocme" and json.loads(summary[2]["modalities"])[0] == "structure"
    assert close == ("close", "finished")


def test_a_failing_run_closes_its_trackers_as_failed(tmp_path, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(Tracking, "for_run", classmethod(lambda cls, config, directory: cls([recorder])))

    def boom(record):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        pipeline.train(load_config(overrides=TINY), tmp_path / "run", callbacks=[boom])
    assert [c[0] for c in recorder.calls] == ["start", "metrics", "close"]
    assert recorder.calls[-1] == ("close", "failed")


class FullDisk(Recorder):
    """A tracker whose back end fails from the second epoch's metrics on."""

    def log_metrics(self, metrics, step):
        if step == 2:
            raise OSError(28, "No space left on device")
        super().log_metrics(metrics, step)


def test_a_failing_tracker_is_dropped_with_a_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    from mocme.tracking.base import TrackingWarning

    failing, healthy = FullDisk(), Recorder()
    monkeypatch.setattr(Tracking, "for_run", classmethod(lambda cls, config, directory: cls([failing, healthy])))
    with pytest.warns(TrackingWarning, match="FullDisk failed to log metrics .*No space left on device"):
        result = pipeline.train(load_config(overrides=TINY), tmp_path / "run")
    assert result.metrics["epochs_trained"] == 2 and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert [c[0] for c in failing.calls] == ["start", "metrics", "close"] and failing.calls[-1] == ("close", "failed")
    assert [c[0] for c in healthy.calls] == ["start", "metrics", "metrics", "summary", "close"]


def test_a_tracker_that_fails_to_start_is_closed_as_failed_and_the_run_goes_on(tmp_path, monkeypatch):
    from mocme.tracking.base import TrackingWarning

    class Unreachable(Recorder):
        def start(self, params, resumed_at):
            super().start(params, resumed_at)
            raise ConnectionError("tracking server unreachable")

    tracker = Unreachable()
    monkeypatch.setattr(Tracking, "for_run", classmethod(lambda cls, config, directory: cls([tracker])))
    with pytest.warns(TrackingWarning, match="Unreachable failed to start"):
        result = pipeline.train(load_config(overrides=TINY), tmp_path / "run")
    assert result.metrics["epochs_trained"] == 2
    assert [c[0] for c in tracker.calls] == ["start", "close"] and tracker.calls[-1] == ("close", "failed")


def test_values_are_split_into_finite_numbers_and_text():
    numbers, strings = split_values({"a": 1, "b": True, "c": 0.5, "d": float("nan"), "e": "x", "f": [1, 2], "g": None})
    assert numbers == {"a": 1.0, "b": 1.0, "c": 0.5}
    assert strings == {"e": "x", "f": "[1, 2]", "g": "null"}
    params = config_params(load_config(overrides=["model.dim=12"]))
    assert params["model.dim"] == "12" and params["evaluation.ks"] == "[1, 3, 10]"


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    pytest.importorskip("torch.utils.tensorboard")
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("tracked")
    config = load_config(overrides=[*TINY, "tracking.backends=[tensorboard, mlflow]", "tracking.experiment=test"])
    return pipeline.train(config, root / "run")


def test_tensorboard_event_files_hold_every_epoch_and_the_final_metrics(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tracked_run.directory.path / "tensorboard"))
    accumulator.Reload()
    scalars = accumulator.Tags()["scalars"]
    assert [e.step for e in accumulator.Scalars("loss")] == [1, 2]
    trace = tracked_run.directory.trace()
    valid = [e.value for e in accumulator.Scalars("valid/both/realistic/inverse_harmonic_mean_rank")]
    assert valid == pytest.approx([r["valid"][MRR] for r in trace])
    final = accumulator.Scalars("final/test/both/realistic/hits_at_10")
    assert final[0].value == pytest.approx(tracked_run.metrics["test"]["both"]["realistic"]["hits_at_10"])
    assert "losses/joint" in scalars
    assert {"config/text_summary", "summary/text_summary"} <= set(accumulator.Tags()["tensors"])


def test_mlflow_store_holds_params_metrics_and_tags(tracked_run):
    from mlflow.tracking import MlflowClient

    state = json.loads((tracked_run.directory.path / "tracking.json").read_text())["mlflow"]
    db = tracked_run.directory.path.parent / "mlflow.db"
    assert db.is_file() and state["tracking_uri"] == f"sqlite:///{db.resolve().as_posix()}"
    client = MlflowClient(state["tracking_uri"])
    experiment = client.get_experiment_by_name("test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == state["run_id"] and run.info.status == "FINISHED"
    assert run.info.run_name == "run"
    assert run.data.params["model.dim"] == "8" and run.data.params["training.epochs"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    expected = tracked_run.metrics["test"]["both"]["realistic"]["inverse_harmonic_mean_rank"]
    assert run.data.metrics[f"final.test.{MRR}"] == pytest.approx(expected)
    assert run.data.tags["dataset"] == "synthetic" and run.data.tags["mocme.run_dir"].endswith("run")


def test_a_resumed_run_continues_its_mlflow_run_and_rewrites_repeated_tensorboard_steps(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    mlflow_tracking = pytest.importorskip("mlflow.tracking")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = load_config(overrides=[*TINY, "training.epochs=3", "tracking.backends=[tensorboard, mlflow]"])

    def interrupt_at_epoch_2(record):
        if record["epoch"] == 2:  # after the trackers logged epoch 2, before its checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.train(config, tmp_path / "run", callbacks=[interrupt_at_epoch_2])
    state = json.loads((tmp_path / "run" / "tracking.json").read_text())["mlflow"]
    client = mlflow_tracking.MlflowClient(state["tracking_uri"])
    assert client.get_run(state["run_id"]).info.status == "KILLED"

    pipeline.resume(tmp_path / "run")
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and f"final.test.{MRR}" in run.data.metrics
    assert len(client.search_runs([run.info.experiment_id])) == 1
    accumulator = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("loss")] == [1, 2, 3]


def test_a_missing_tracking_package_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    config = load_config(overrides=[*TINY, "tracking.backends=[mlflow]"])
    with pytest.raises(MissingExtraError, match=r"mocme\[tracking\]"):
        pipeline.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    sets = [arg for override in [*TINY, "tracking.backends=[mlflow]"] for arg in ("--set", override)]
    assert main(["train", "--quiet", "--out", str(tmp_path / "cli"), *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: mlflow is needed") and "'tracking' extra" in err and "\n" not in err
    assert not (tmp_path / "cli").exists()


def test_unknown_backend_is_a_config_error():
    from mocme.errors import ConfigError

    with pytest.raises(ConfigError, match=r"tracking\.backends"):
        load_config(overrides=["tracking.backends=[wandb]"])


def test_a_shared_tensorboard_root_keeps_two_studies_trials_apart(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    from mocme.config import TrackingConfig
    from mocme.rundir import RunDirectory
    from mocme.tracking.backends import TensorBoardTracker

    config = TrackingConfig(backends=["tensorboard"], tensorboard_dir=tmp_path / "tb")
    folders = {TensorBoardTracker(config, RunDirectory(tmp_path / s / "trial-0000")).log_dir for s in ("a", "b")}
    assert folders == {tmp_path / "tb" / "a" / "trial-0000", tmp_path / "tb" / "b" / "trial-0000"}
