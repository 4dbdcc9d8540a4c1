"""The host facts that move memory timings, captured with every run: DAMON, free page reporting."""
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
