"""The notebooks' explorers: only choices that can run here, one line for an impossible one, sizes as sizes."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from mmlab.core.params import ParamError
from mmlab.study import explore


def test_host_profile_is_offered_only_once_calibrated(monkeypatch, tmp_path):
    """Without a calibrated profile of this machine `host` is not offered; once one is saved, it is."""
    from mmlab.sim import profile

    assert "host" not in explore.profiles() and "reference" in explore.profiles()
    path = profile.host_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(profile.reference().to_dict()))
    assert "host" in explore.profiles()


def test_an_impossible_choice_is_one_line_in_place_of_the_figure():
    def draw(**_):
        raise ParamError("profile", "host", "reference | desktop-2009", "has no calibrated file yet")

    shown = explore._figure_or_line(draw, {})
    assert "\n" not in shown.data and "profile" in shown.data and "Traceback" not in shown.data


def test_the_stored_data_explorer_shows_sizes_as_sizes_and_filters_by_them(monkeypatch):
    """A size column's choices read `1GiB`, not `1073741824.0`, and choosing one keeps its rows."""
    pytest.importorskip("ipywidgets")
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a))
    rows = pd.DataFrame({"vma_bytes": [1.0 * (1 << 30), 64.0 * (1 << 30)], "kill_to_reap_s": [0.01, 0.011],
                         "target_populated_bytes": [64 << 20, 64 << 20], "warmup": False})
    box = explore.measured_explorer(rows, x="target_populated_bytes", y="kill_to_reap_s", filters=["vma_bytes"])
    dropdown = box.children[0].children[0]
    assert [label for label, _ in dropdown.options] == ["(all)", "1GiB", "64GiB"]
    assert dropdown.description == "vma" and dropdown.style.description_width == "initial"
    value = dict(dropdown.options)["64GiB"]
    assert len(explore.filtered(rows, {"vma_bytes": value})) == 1
