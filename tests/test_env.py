"""The host facts that move memory timings, captured with every run: DAMON, free page reporting, the
console an OOM kill writes to."""
import shutil
import subprocess

import pytest

from mmlab.kernel import env, procfs


def kdamond(root, n, state, ops, actions):
    kd = root / str(n)
    (kd / "contexts" / "0" / "schemes").mkdir(parents=True)
    (kd / "state").write_text(state + "\n")
    (kd / "contexts" / "0" / "operations").write_text(ops + "\n")
    for i, a in enumerate(actions):
        (kd / "contexts" / "0" / "schemes" / str(i)).mkdir()
        (kd / "contexts" / "0" / "schemes" / str(i) / "action").write_text(a + "\n")


def test_damon_names_running_monitors_and_their_actions(tmp_path):
    kdamond(tmp_path, 0, "on", "paddr", ["pageout"])
    kdamond(tmp_path, 1, "off", "vaddr", ["stat"])
    assert env.damon(tmp_path) == "on: paddr pageout"


def test_damon_off_or_unavailable(tmp_path):
    kdamond(tmp_path, 0, "off", "paddr", ["pageout"])
    assert env.damon(tmp_path) == "off"
    assert env.damon(tmp_path / "missing") == "unavailable"


def test_page_reporting_on_only_once_a_device_set_the_order(tmp_path):
    (tmp_path / "page_reporting_order").write_text("9\n")
    assert env.page_reporting(tmp_path) == "on (order 9)"
    (tmp_path / "page_reporting_order").write_text("4294967295\n")
    assert env.page_reporting(tmp_path) == "off"
    assert env.page_reporting(tmp_path / "missing") == "unavailable"


def test_host_reported_kib_reads_the_counter_or_none(tmp_path):
    (tmp_path / "reported_kib").write_text("57669896\n")
    assert procfs.host_reported_kib(tmp_path) == 57669896
    assert procfs.host_reported_kib(tmp_path / "missing") is None


def test_capture_carries_both():
    e = env.capture()
    assert e["damon"].startswith(("on: ", "off", "unavailable"))
    assert e["page_reporting"].startswith(("on (order ", "off", "unavailable"))


def test_the_commit_is_read_in_a_git_worktree_too(tmp_path):
    """In a worktree `.git` is a file pointing at the worktree's git folder; its branch ref lives in the
    main repository's folder (commondir)."""
    from mmlab.kernel import env

    sha = "0123456789abcdef0123456789abcdef01234567"
    main = tmp_path / "main" / ".git"
    (main / "refs" / "heads").mkdir(parents=True)
    (main / "refs" / "heads" / "topic").write_text(sha + "\n")
    wt_git = main / "worktrees" / "topic"
    wt_git.mkdir(parents=True)
    (wt_git / "HEAD").write_text("ref: refs/heads/topic\n")
    (wt_git / "commondir").write_text("../..\n")
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {wt_git}\n")
    assert env.git_commit(wt) == sha[:12]


def test_console_loglevel_and_consoles_say_whether_an_oom_kill_line_is_written_out():
    # KERN_ERR (3) reaches the consoles when console_loglevel is above 3
    assert env.parse_console_loglevel("4\t4\t1\t7\n") == 4
    assert env.parse_console_loglevel("") is None
    consoles = "ttyS0                -W- (EC  p a)    4:64\nnetcon0              -W- (E     a)\n"
    assert env.parse_consoles(consoles) == "ttyS0,netcon0"
    assert env.parse_consoles("") == "none"
    e = env.capture()
    assert e["console_loglevel"] is None or 0 <= e["console_loglevel"] <= 15


def test_git_modified_says_whether_tracked_files_differ_from_the_commit(tmp_path):
    """A run from an edited tree is marked so, not credited to the commit; outside a clone it is unknown."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    assert env.git_modified(tmp_path) is None
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run(git + ["add", "a.py"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "a"], check=True)
    assert env.git_modified(tmp_path) is False
    (tmp_path / "untracked.txt").write_text("not part of the commit\n")
    assert env.git_modified(tmp_path) is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert env.git_modified(tmp_path) is True
