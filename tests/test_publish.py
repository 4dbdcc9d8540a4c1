"""Publishing for readers: what the site keeps out (private facts, reprs, pids) and how it names things."""
import nbformat
import numpy as np
import pandas as pd

from mmlab.study import publish, reader_view, site_index
from mmlab.study.wording import readable


def test_private_strings_are_replaced_longest_first():
    """A runs folder inside the clone becomes `data/runs`, not `./data/runs`; the command line goes."""
    private = {"/srv/clone/data/runs": "data/runs", "/srv/clone": ".", "BOOT_IMAGE=/vmlinuz ro": "(not published)"}
    private = dict(sorted(private.items(), key=lambda kv: -len(kv[0])))
    text = "stored in /srv/clone/data/runs/r1 by /srv/clone/mmlab; cmdline BOOT_IMAGE=/vmlinuz ro"
    assert reader_view.scrub(text, private) == "stored in data/runs/r1 by ./mmlab; cmdline (not published)"


def test_public_environment_leaves_out_the_command_line_and_user():
    """The environment table a reader sees has sizes with units and no command line, uid or host name."""
    env = {"host_tag": "0a7c9c", "kernel_release": "6.18", "kernel_cmdline": "root=/dev/vda ro", "uid": 0,
           "mem_total_bytes": 24 << 30, "rlimit_memlock_soft_bytes": (1 << 64) - 1}
    rows = dict(site_index.public_environment(env))
    assert rows["mem total"] == "24 GiB" and rows["rlimit memlock soft"] == "unlimited"
    assert "root=/dev/vda ro" not in str(rows) and "uid" not in rows


def test_reader_view_drops_reprs_and_stderr_but_keeps_tables_and_prints():
    """A bare `Params(...)` result and a warning go; a DataFrame's HTML and a print stay."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "SummaryParams(vma_bytes=1)"}, execution_count=1),
                    nbformat.v4.new_output("stream", name="stderr", text="UserWarning: noise\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="42 rows\n"),
                    nbformat.v4.new_output("display_data", {"text/html": "<table></table>", "text/plain": "df"})]
    nb.cells = [cell]
    nb, _ = reader_view.ReaderView().preprocess(nb, {})
    kinds = [(o.output_type, o.get("name")) for o in nb.cells[0].outputs]
    assert kinds == [("stream", "stdout"), ("display_data", None)]


def test_title_is_the_notebooks_first_heading():
    """`# 03 · munlock() of a partly populated VM_LOCKED range` names the page, underscores kept."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 03 · `munlock()` of a partly populated VM_LOCKED range\n\ntext")]
    assert publish.title_of(nb) == "03 · munlock() of a partly populated VM_LOCKED range"


def test_contents_lists_the_sections_by_their_ids():
    body = '<h2 id="Run">Run<a class="anchor-link" href="#Run">¶</a></h2><h3 id="x">x</h3><h2 id="Summary-table">Summary table</h2>'
    toc = publish.contents(body)
    assert 'href="#Run"' in toc and 'href="#Summary-table"' in toc and 'href="#x"' not in toc


def test_cited_documents_and_commits_are_linked():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("see `shared/MEASURING.md` and (kernel-history 1), fix (408e82b78bcc)")]
    nb, _ = reader_view.CiteSources(["sources/MEASURING.md", "sources/kernel-history.md"]).preprocess(nb, {})
    text = nb.cells[0].source
    assert "[shared/MEASURING.md](sources/MEASURING.md)" in text and "[kernel-history](sources/kernel-history.md)" in text
    assert "(https://git.kernel.org/" in text and "id=408e82b78bcc" in text


def test_readable_table_has_units_and_no_pids_or_empty_rows():
    """Sizes in MiB, times in ms, no pid column, a row without any value dropped."""
    rows = pd.DataFrame({"pid": [101, 102, 103], "vma_bytes": [64 << 20, 256 << 20, np.nan],
                         "kill_to_reap_s": [0.0123, 0.0456, np.nan], "role": ["victim", "victim", "victim"]})
    out = readable(rows)
    assert list(out.columns) == ["VMA", "kill to reap"]
    assert out.to_dict("list") == {"VMA": ["64 MiB", "256 MiB"], "kill to reap": ["12.3 ms", "45.6 ms"]}


def test_set_up_cells_that_show_nothing_fold_into_one_block():
    """Three code cells without output before the first result become one folded block holding all three
    sources; a cell with output, and the cell after it, stay apart."""
    nb = nbformat.v4.new_notebook()
    quiet = [nbformat.v4.new_code_cell(src) for src in ("a = 1", "b = 2", "c = 3")]
    shown = nbformat.v4.new_code_cell("print(a)")
    shown.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), *quiet, shown, nbformat.v4.new_code_cell("d = 4")]
    nb, _ = reader_view.ReaderView().preprocess(nb, {})
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "code"]
    assert nb.cells[1].source == "a = 1\n\nb = 2\n\nc = 3" and nb.cells[2].source == "print(a)"


def test_limitations_say_when_an_oom_victim_writes_its_kill_line_to_a_console():
    from mmlab.study import sentences

    env = {"cpu_count": 2, "console_loglevel": 4, "consoles": "ttyS0"}
    assert "ttyS0" in sentences.limitations(env, True, "reference")
    quiet = sentences.limitations({**env, "console_loglevel": 3}, True, "reference")
    assert "console" not in quiet
