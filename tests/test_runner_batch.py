"""`mmlab run` in batch: values checked before anything runs, passed typed to the notebooks that
declare them, the summary last but listed first, wall times recorded, a site that needs no network."""
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.notebook

META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def notebook(path: Path, params: str, *cells, tags=None) -> Path:
    nb = nbformat.v4.new_notebook(metadata=META)
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]})]
    for i, src in enumerate(cells):
        nb.cells.append(nbformat.v4.new_code_cell(src, metadata={"tags": (tags or {}).get(i, [])}))
    nbformat.write(nb, path)
    return path


def mmlab_run(*args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "mmlab", "run", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    index = Path(r.stdout.strip().splitlines()[-1].removeprefix("HTML index: ")) if r.returncode in (0, 1) and r.stdout else None
    return r, index


def log_line(log: Path, text: str) -> str:
    return f"open({str(log)!r}, 'a').write({text} + '\\n')"


def test_a_badly_typed_value_is_refused_before_any_notebook_runs(tmp_path):
    """`-p repeats abc` for a notebook declaring `repeats: int`: exit 2 naming it; the other notebook,
    first in order, has not run and no report folder exists."""
    log = tmp_path / "ran.log"
    a = notebook(tmp_path / "01-a.ipynb", "x = 1", log_line(log, "'a'"))
    b = notebook(tmp_path / "02-b.ipynb", "repeats: int = 3  # repeats", log_line(log, "'b'"))
    r, _ = mmlab_run(a, b, "-p", "repeats", "abc")
    assert r.returncode == 2 and "parameter repeats" in r.stderr and "02-b" in r.stderr
    assert not log.exists()


def test_a_value_outside_the_experiments_range_is_refused_before_running(tmp_path):
    """A notebook naming its parameter class (`# mmlab: validate=experiment:mlock-throughput`) gets
    `lock_share 5` refused by that class's range (at most 0.9), before it runs."""
    log = tmp_path / "ran.log"
    nb = notebook(tmp_path / "01-x.ipynb", "# mmlab: validate=experiment:mlock-throughput\nlock_share: float = 0.25  # guard",
                  log_line(log, "'x'"))
    r, _ = mmlab_run(nb, "-p", "lock_share", "5")
    assert r.returncode == 2 and "parameter lock_share" in r.stderr and "0.9" in r.stderr
    assert not log.exists()


def test_yaml_values_reach_only_declaring_notebooks_with_their_declared_type(tmp_path):
    """`-f params.yaml` with `n: "7"`: the notebook declaring `n: int` gets the integer 7; the other
    one, which does not declare it, runs without it."""
    log = tmp_path / "ran.log"
    a = notebook(tmp_path / "01-a.ipynb", "n: int = 1  # n", log_line(log, "f'a {type(n).__name__} {n}'"))
    b = notebook(tmp_path / "02-b.ipynb", "m = 1", log_line(log, "f'b {\"n\" in dir()}'"))
    yml = tmp_path / "p.yaml"
    yml.write_text('n: "7"\n')
    r, _ = mmlab_run(a, b, "-f", yml)
    assert r.returncode == 0, r.stderr
    assert log.read_text().splitlines() == ["a int 7", "b False"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A report of a summary (00-*) with headline cells and a data notebook that sleeps 1 s."""
    d = tmp_path_factory.mktemp("site")
    log = d / "order.log"
    summary = notebook(
        d / "00-sum.ipynb", "x = 1", log_line(log, "'00-sum'"),
        "from IPython.display import Markdown, display\ndisplay(Markdown('**Headline:** exit took 41x longer'))",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4]); plt.show()",
        "print('a code cell with SECRET_SOURCE_MARK')", tags={1: ["headline"], 2: ["headline"]})
    data = notebook(d / "01-data.ipynb", "x = 1", "import time; time.sleep(1)", log_line(log, "'01-data'"),
                    "import pandas as pd\nfrom mmlab.core import store\n"
                    "store.save({'demo': pd.DataFrame({'experiment': ['demo'], 'method': ['real']})}, {}, {})")
    reports = d / "reports"
    env = {**__import__("os").environ, "MMLAB_REPORTS_DIR": str(reports), "MMLAB_RUNS_DIR": str(d / "runs")}
    r = subprocess.run([sys.executable, "-m", "mmlab", "run", str(summary), str(data)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    index = Path(r.stdout.strip().splitlines()[-1].removeprefix("HTML index: "))
    return {"index": index, "dir": index.parent, "log": log, "stderr": r.stderr, "runs": d / "runs"}


def test_the_summary_runs_last_but_is_listed_first(site):
    """The summary summarises what the other notebooks stored, so it runs after them; readers see it first."""
    assert site["log"].read_text().splitlines() == ["01-data", "00-sum"]
    page = site["index"].read_text()
    assert page.index("00-sum.html") < page.index("01-data.html")


def test_wall_time_of_each_notebook_is_recorded(site):
    """A notebook that sleeps 1 s is recorded as taking at least 1 s, in run.json and on the page."""
    run = json.loads((site["dir"] / "run.json").read_text())
    wall = {n["name"]: n["wall_s"] for n in run["notebooks"]}
    assert wall["01-data"] >= 1.0 and run["wall_s"] >= wall["01-data"] + wall["00-sum"]


def test_runs_stored_by_a_report_belong_to_its_collection(site):
    """A run a notebook stores while `mmlab run` builds a report names that report as its collection (the
    model check prices each collection at its own calibration runs)."""
    from mmlab.core import store

    df = store.load(runs_dir=site["runs"])
    assert len(df) == 1 and df["collection"].tolist() == [site["dir"].name]


def test_progress_is_one_line_per_notebook_without_kernel_noise(site):
    """Each notebook gets one line (its place in the run, name, result, wall time); the kernels say
    nothing on the terminal (no TCP-encryption warning, no interrupt logged at shutdown)."""
    lines = [line for line in site["stderr"].splitlines() if line.strip()]
    assert re.fullmatch(r"mmlab run \[1/2\] 01-data ok \(\d.*", lines[0])
    assert re.fullmatch(r"mmlab run \[2/2\] 00-sum ok \(\d.*", lines[1])
    assert "IPKernelApp" not in site["stderr"] and "encryption" not in site["stderr"]


def test_headline_of_the_summary_reaches_the_landing_page_as_files(site):
    """Sentences of `headline` cells appear on the index; their figures are PNG files linked relatively."""
    page = site["index"].read_text()
    assert "exit took 41x longer" in page
    imgs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert imgs and all(not i.startswith(("http", "/")) for i in imgs)
    assert all((site["dir"] / i).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)


def test_code_is_folded_and_outputs_shown(site):
    """The reader sees what a cell printed; its source sits only in a closed <details> to open."""
    html = (site["dir"] / "00-sum.html").read_text()
    outside = re.sub(r'<details class="mmlab-code">.*?</details>', "", html, flags=re.S)
    assert "a code cell with SECRET_SOURCE_MARK" in outside and "print(" not in outside
    folded = re.sub(r"<[^>]+>", "", "".join(re.findall(r'<details class="mmlab-code">.*?</details>', html, flags=re.S)))
    assert "print(" in folded and '<details class="mmlab-code" open' not in html


def test_the_site_fetches_nothing_from_the_network(site):
    """No script, stylesheet or image is loaded from a URL: the folder works offline and on any host."""
    for page in site["dir"].glob("*.html"):
        text = page.read_text()
        assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', text), page.name


def test_show_code_publishes_the_code_open_for_authors(tmp_path):
    """`mmlab run --show-code` opens every folded code cell of the pages."""
    nb = notebook(tmp_path / "01-a.ipynb", "x = 1", "print('visible source')")
    env = {**__import__("os").environ, "MMLAB_REPORTS_DIR": str(tmp_path / "reports"), "MMLAB_RUNS_DIR": str(tmp_path / "runs")}
    r = subprocess.run([sys.executable, "-m", "mmlab", "run", str(nb), "--show-code"], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    html = (Path(r.stdout.strip().splitlines()[-1].removeprefix("HTML index: ")).parent / "01-a.html").read_text()
    assert '<details class="mmlab-code" open' in html and '<details class="mmlab-code">' not in html
