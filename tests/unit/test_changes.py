import os
from pathlib import Path

from data_plane.changes import detect_changes
from data_plane.sources import ColumnSpec, SourceSpec


def spec(path: Path) -> SourceSpec:
    return SourceSpec(
        name=path.stem,
        format="csv",
        path=path,
        storage_endpoint="s3://eu-west-1/x",
        source_system="S",
        owner_team="t",
        columns=(ColumnSpec("a", "string"),),
    )


def test_only_content_changes_count(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("a\n1\n")
    b.write_text("a\n2\n")
    specs = [spec(a), spec(b), spec(tmp_path / "gone.csv")]

    changes, cursor, missing = detect_changes(specs, {})
    assert [c.source for c in changes] == ["a", "b"] and all(c.first_seen for c in changes)
    assert missing == ["gone"]

    assert detect_changes(specs, cursor)[0] == []  # nothing moved

    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched, same content
    changes, cursor, _ = detect_changes(specs, cursor)
    assert changes == []

    b.write_text("a\n3\n")
    changes, cursor, _ = detect_changes(specs, cursor)
    assert [(c.source, c.first_seen) for c in changes] == [("b", False)]
