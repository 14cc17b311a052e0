"""JobControlNotes: one note per job-control stop and one per continue, the state read at
most every CHECK_INTERVAL_S, nothing said for a tracer's stop or a target killed while
stopped.  The states are given in turn, as /proc/PID/stat would show them."""

from __future__ import annotations

from gdb_qznusnih.perf.job_control import (
    CHECK_INTERVAL_S,
    RUNS_AGAIN,
    JobControlNotes,
    left_stopped_text,
    stopped_text,
)

PID = 4242


class Script:
    """The target's states, one per read, and a clock the test moves."""

    def __init__(self, *states: str):
        self.states = list(states)
        self.reads = 0
        self.now = 100.0

    def read_state(self, pid: int) -> str:
        assert pid == PID
        self.reads += 1
        return self.states.pop(0)


def notes_for(first: str, *later: str) -> tuple[list[str], Script, JobControlNotes]:
    said: list[str] = []
    script = Script(first, *later)
    watcher = JobControlNotes(PID, said.append, script.read_state, lambda: script.now)
    return said, script, watcher


def check_each_interval(script: Script, watcher: JobControlNotes, times: int) -> None:
    for _ in range(times):
        script.now += CHECK_INTERVAL_S
        watcher.check()


def test_a_stop_and_its_continue_are_said_once_each_however_often_they_are_read():
    said, script, watcher = notes_for("S", "R", "T", "T", "T", "S", "R", "T", "R")
    check_each_interval(script, watcher, 8)
    assert said == [stopped_text(PID), RUNS_AGAIN, stopped_text(PID), RUNS_AGAIN]
    assert "'kill -CONT 4242'" in said[0]


def test_the_state_is_read_at_most_once_an_interval():
    said, script, watcher = notes_for("R", "T", "T", "T", "T")
    for _ in range(45):  # 4.5 intervals of the consumer loop's polls
        script.now += CHECK_INTERVAL_S / 10
        watcher.check()
    assert script.reads == 5  # at arming, then once each interval
    assert said == [stopped_text(PID)]


def test_a_target_stopped_at_arming_is_not_said_stopped_again_only_running():
    said, script, watcher = notes_for("T", "T", "T", "S")
    assert watcher.stopped
    check_each_interval(script, watcher, 3)
    assert said == [RUNS_AGAIN] and not watcher.stopped


def test_a_tracers_stop_is_no_job_control_stop_nor_its_end():
    said, script, watcher = notes_for("R", "t", "R", "T", "t", "S")
    check_each_interval(script, watcher, 5)
    assert said == [stopped_text(PID), RUNS_AGAIN]  # T then S: t in between says nothing


def test_a_target_killed_while_stopped_is_not_said_to_run_again():
    said, script, watcher = notes_for("R", "T", "Z", "")
    check_each_interval(script, watcher, 3)
    assert said == [stopped_text(PID)] and not watcher.stopped


def test_the_end_says_the_target_is_left_stopped_only_when_it_is():
    said, _, watcher = notes_for("T", "T")
    watcher.ended()
    assert said == [left_stopped_text(PID)]
    said, _, watcher = notes_for("R", "S")
    watcher.ended()
    assert said == []
