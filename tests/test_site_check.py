"""The site checker's promises on what a browser saw of a page (pure; the browser run is in
test_site_browser)."""
from mmlab.study import site_check as sc

GOOD = dict(name="03-munlock-partial.html", title="03 · munlock() of a partly populated range · mmlab",
            h1="03 · munlock() of a partly populated range", hrefs=["index.html", "02-x.html"], scroll_width=1280,
            text="munlock() took 1.2 ms (95% CI 1.1–1.3 ms, bootstrap, n = 7)", paragraphs=[])


def test_a_page_keeping_every_promise_has_no_problem():
    """Titled by its heading, linking the index, 1280 px wide, prose only."""
    assert sc.page_problems(**GOOD) == []


def test_a_page_wider_than_the_window_is_flagged():
    """One pixel past 1280 scrolls sideways at 1280x800."""
    assert any("1281 px wide" in p for p in sc.page_problems(**{**GOOD, "scroll_width": 1281}))


def test_visible_code_and_an_untitled_page_without_a_way_home_are_flagged():
    """`import` / `from mmlab` lines in the visible text, the title "Notebook", no link to the index."""
    bad = sc.page_problems(**{**GOOD, "title": "Notebook", "hrefs": [], "text": "x\n  from mmlab.study import report\n"})
    assert len(bad) == 3


def test_ci_in_a_sentence_about_simulated_figures_is_flagged_and_a_measured_ci_is_not():
    """A model's spread is a model range; a bootstrap CI of measured repeats in its own sentence is fine."""
    para = ("Measured here it took 2 ms (95% CI 1.9–2.1 ms). Simulated on the reference profile it took "
            "20 ms (CI 10–30 ms).")
    assert sc.ci_about_simulation([para]) == ["Simulated on the reference profile it took 20 ms (CI 10–30 ms)."]


def test_a_file_holding_a_private_string_is_named(tmp_path):
    """Any page, notebook or data file holding the kernel command line or a clone path is reported."""
    (tmp_path / "a.html").write_text("<p>ok</p>")
    (tmp_path / "b.ipynb").write_text('{"cwd": "/home/someone/mmlab-clone/notebooks"}')
    assert sc.leaks(tmp_path, ["/home/someone/mmlab-clone"]) == [
        "b.ipynb: holds the kernel command line or an absolute path of this machine"]
