from dataclasses import dataclass

import pytest

from mmlab.core import params as p
from mmlab.core.units import format_bytes, parse_bytes, parse_seconds


@pytest.mark.parametrize("text,expected", [("512MiB", 512 << 20), ("4GiB", 4 << 30), ("2000000000", 2_000_000_000),
                                           (4096, 4096), ("1.5KiB", 1536), ("64 GiB", 64 << 30), ("1TiB", 1 << 40)])
def test_sizes_are_read_as_people_write_them(text, expected):
    """Sizes accept bytes or binary-unit strings and are bytes inside."""
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["12XB", "", "-5MiB", "nan", True, 1.5, "0.3B", None, [1]])
def test_malformed_sizes_are_refused(bad):
    with pytest.raises(ValueError):
        parse_bytes(bad)


def test_format_bytes_round_trips_binary_multiples():
    for n in (4096, 1 << 20, 512 << 20, 64 << 30):
        assert parse_bytes(format_bytes(n)) == n


def test_seconds_with_units():
    assert parse_seconds("500ms") == pytest.approx(0.5)
    assert parse_seconds("2s") == 2.0


@dataclass(frozen=True)
class Demo(p.Params):
    sizes: tuple = p.sizes(["64MiB"], "region sizes", lo=4096, hi=1 << 30)
    repeats: int = p.integer(3, "repeats", 1, 100)
    share: float = p.real(0.25, "share", 0.01, 0.9)
    mode: str = p.choice("a", ["a", "b"], "mode")


def test_params_coerce_strings_from_the_command_line():
    d = Demo.from_mapping({"sizes": "4MiB,1GiB", "repeats": "7", "share": "0.5", "mode": "b"})
    assert d.sizes == (4 << 20, 1 << 30) and d.repeats == 7 and d.share == 0.5 and d.mode == "b"


@pytest.mark.parametrize("name,value", [("sizes", "2GiB"), ("sizes", "12XB"), ("sizes", ""), ("repeats", "0"),
                                        ("repeats", "2.5"), ("share", "nan"), ("share", "inf"), ("mode", "c"),
                                        ("repeats", None)])
def test_bad_values_name_the_parameter_and_the_allowed_range(name, value):
    """Every bad value is one line naming the parameter and what is allowed."""
    with pytest.raises(p.ParamError) as e:
        Demo.from_mapping({name: value})
    msg = str(e.value)
    assert msg.startswith(f"parameter {name}:") and "allowed:" in msg and "\n" not in msg


def test_unknown_parameter_lists_the_known_ones():
    with pytest.raises(p.ParamError, match="allowed: mode, repeats, share, sizes"):
        Demo.from_mapping({"size": "1MiB"})


def test_describe_gives_defaults_with_units():
    rows = {r["name"]: r for r in Demo.describe()}
    assert rows["sizes"]["default"] == "64MiB" and rows["sizes"]["unit"] == "bytes"


def test_sizes_above_rlimit_memlock_are_dropped_with_a_warning_naming_them():
    """Without CAP_IPC_LOCK the kernel caps mlock at RLIMIT_MEMLOCK: larger sizes are not run, and the user is told."""
    from mmlab.kernel.safety import Budget, SizesDropped

    b = Budget(guard_bytes=1 << 30, rlimit_bytes=8 << 20, lock_share=0.25, mem_available_bytes=4 << 30)
    with pytest.warns(SizesDropped, match="16MiB not run"):
        assert b.check("sizes", (1 << 20, 16 << 20)) == (1 << 20,)


def test_sizes_above_rlimit_memlock_are_divided_to_fit_keeping_their_ratios():
    """Without CAP_IPC_LOCK, mlock charges the whole VMA against RLIMIT_MEMLOCK: every size is divided by one
    power of two until the largest locked one fits 8 MiB, so a 64 GiB and a 1 GiB VMA stay 64x apart."""
    from mmlab.kernel.safety import SizesScaled, fit

    with pytest.warns(SizesScaled, match="divided by 8192"):
        f = fit(8 << 20, {"vma_bytes": (1 << 30, 64 << 30), "populated_bytes": (64 << 20, 256 << 20)})
    assert f.values["vma_bytes"] == (128 << 10, 8 << 20)
    assert f.values["populated_bytes"] == (8 << 10, 32 << 10)
    assert f.columns() == {"size_divisor": 8192, "memlock_limit_bytes": 8 << 20}


def test_sizes_within_rlimit_memlock_or_with_cap_ipc_lock_run_as_asked():
    from mmlab.kernel.safety import fit

    assert fit(8 << 20, {"sizes": (1 << 20, 8 << 20)}).divisor == 1
    f = fit(None, {"sizes": (256 << 20,)})
    assert f.values["sizes"] == (256 << 20,) and f.columns() == {"size_divisor": 1, "memlock_limit_bytes": None}
