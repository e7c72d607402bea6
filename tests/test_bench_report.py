"""Benchmarks rewrite only their own section of BENCHMARKS.md (bench/_report.py)."""

from bench._report import write_section


def test_a_section_is_replaced_in_place_or_appended(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## a\n\nold a\n\n## b\n\nkeep b\n")
    write_section("## a", "## a\n\nnew a\n", path)
    assert path.read_text() == "# Benchmarks\n\n## a\n\nnew a\n\n## b\n\nkeep b\n"
    write_section("## b", "## b\n\nnew b", path)
    assert path.read_text().endswith("## b\n\nnew b\n") and "new a" in path.read_text()
    write_section("## c", "## c\n\nadded\n", path)
    assert path.read_text().endswith("keep b\n".replace("keep b", "new b") + "\n## c\n\nadded\n")


def test_a_subsection_another_benchmark_writes_is_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## a\n\nold a\n\n### theirs\n\nkept\n\n## b\n\nkeep b\n")
    write_section("## a", "## a\n\nnew a\n", path, keep="### theirs")
    assert path.read_text() == "# Benchmarks\n\n## a\n\nnew a\n\n### theirs\n\nkept\n\n## b\n\nkeep b\n"
    # without the subsection there, the whole section is replaced as usual
    write_section("## b", "## b\n\nnew b\n", path, keep="### theirs")
    assert path.read_text().endswith("### theirs\n\nkept\n\n## b\n\nnew b\n")
