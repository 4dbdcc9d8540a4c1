from mmlab.kernel import procfs

STATUS = """Name:\tmlocker
State:\tS (sleeping)
VmPeak:\t  1052748 kB
VmLck:\t  1048576 kB
VmRSS:\t   262152 kB
Threads:\t1
"""


def test_status_sizes_are_bytes():
    st = procfs.parse_status(STATUS)
    assert st["VmLck"] == 1048576 * 1024 and st["VmRSS"] == 262152 * 1024 and st["Threads"] == 1


def test_stat_parses_comm_with_spaces_and_parens(fixture_text):
    text = fixture_text("proc/stat").replace("(cat)", "(a b) c)")
    s = procfs.parse_stat(text)
    assert s["comm"] == "a b) c" and s["state"] == "R" and s["minflt"] == 116 and s["majflt"] == 0


def test_meminfo_fixture_has_the_counters_we_record(fixture_text):
    m = procfs.parse_meminfo(fixture_text("proc/meminfo"))
    for key in ("Mlocked", "Unevictable", "MemAvailable", "MemTotal"):
        assert key in m and m[key] % 1024 == 0


def test_vmstat_unevictable_counters(fixture_text):
    v = procfs.parse_vmstat(fixture_text("proc/vmstat"))
    assert v["unevictable_pgs_mlocked"] == 19649 and v["unevictable_pgs_munlocked"] == 17066


def test_readers_follow_an_overridden_proc_root(tmp_path, fixture_text):
    (tmp_path / "meminfo").write_text(fixture_text("proc/meminfo"))
    assert procfs.meminfo(root=tmp_path)["MemTotal"] == procfs.parse_meminfo(fixture_text("proc/meminfo"))["MemTotal"]
