"""Concurrent use of run directories, through the real command in subprocesses.

Two trainings into different directories at once end bit-identical to a sequential run of the same
config and seed. Predictions and evaluations served from a run directory while a training writes
into it all succeed: checkpoints are replaced atomically, so a reader sees the old file or the new
one, never a partial one.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.runs import READER, Launcher, assert_same_run, tiny_config


def test_two_trainings_at_once_equal_a_sequential_one(tmp_path):
    config = tiny_config(tmp_path, epochs=6)
    launcher = Launcher(tmp_path)
    try:
        both = [launcher.start("train", str(config), "--out", str(tmp_path / name), "-q") for name in ("a", "b")]
        statuses = [process.wait() for process in both]
        alone = launcher.run("train", str(config), "--out", str(tmp_path / "alone"), "-q")
    finally:
        launcher.close()
    assert statuses == [0, 0], [process.stderr() for process in both]
    assert alone.popen.returncode == 0, alone.stderr()
    assert_same_run(tmp_path / "a", tmp_path / "alone")
    assert_same_run(tmp_path / "b", tmp_path / "alone")


def test_predict_and_evaluate_while_training_writes_the_run(tmp_path):
    config = tiny_config(tmp_path, epochs=40)
    run, stop, summary = tmp_path / "run", tmp_path / "stop", tmp_path / "reads.json"
    launcher = Launcher(tmp_path)
    try:
        writer = launcher.start("train", str(config), "--out", str(run), "-q")
        reader = launcher.start_script(READER, str(run), "r0", "e000", str(stop), str(summary))
        assert writer.wait(300) == 0, writer.stderr()
        stop.write_text("")
        assert reader.wait(60) == 0, reader.stderr()
    finally:
        launcher.close()
    calls = json.loads(summary.read_text())
    failed = [call for call in calls if call["status"] != 0 or not call["json"]]
    assert failed == []
    during = [call for call in calls if call["training"]]
    assert {call["command"] for call in during} == {"predict", "evaluate"}
    assert len({call["last"] for call in during}) >= 3, "the reads did not overlap several checkpoint writes"
    print(f"\n{len(calls)} reads ({len(during)} while training, over {len({c['last'] for c in during})} last.pt)")


def test_a_second_writer_of_the_same_run_is_refused_in_one_line(tmp_path, capsys):
    from mocme.cli import main
    from mocme.errors import RunDirError
    from mocme.rundir import RunDirectory

    run = tmp_path / "run"
    assert main(["train", str(tiny_config(tmp_path, epochs=2)), "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    with RunDirectory(run).lock():  # as a training in another process would hold it
        try:
            with RunDirectory(run).lock():
                raise AssertionError("the lock was granted twice")
        except RunDirError as error:
            assert "another process" in str(error)
        for argv in (["train", "--resume", str(run), "-q"], ["train", "--out", str(run), "--overwrite", "-q"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert "is training this run" in err and len(err.strip().splitlines()) == 1, err
        assert (run / "metrics.json").is_file() and (run / "checkpoints" / "best.pt").is_file()  # untouched
    assert main(["train", "--resume", str(run), "-q"]) == 0  # free again once the holder is gone


def test_a_refused_writer_leaves_the_holders_lock_in_place(tmp_path):
    from mocme.errors import RunDirError
    from mocme.rundir import LOCK_NAME, RunDirectory

    run = tmp_path / "run"
    with RunDirectory(run).lock():  # held before any config.yaml exists, as while --overwrite deletes
        for _ in range(2):  # the second try stands for a third writer: the holder's lock is still there
            with pytest.raises(RunDirError, match="another process"), RunDirectory(run).lock():
                pass
            assert (run / LOCK_NAME).exists()
