"""The README's tour shows the screenshots the browser test takes, and names only files that
exist."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_tour_screenshot_exists_and_comes_from_the_browser_test() -> None:
    readme = (REPO / "README.md").read_text()
    shown = re.findall(r"\]\((docs/screenshots/[^)]+\.png)\)", readme)
    assert shown, "the README shows no screenshot"
    missing = [p for p in shown if not (REPO / p).is_file()]
    assert not missing, f"README shows screenshots that do not exist: {missing}"
    test = (REPO / "tests" / "browser" / "test_dagster_ui.py").read_text()
    taken = set(re.findall(r'_shot\(page, "([^"]+)"', test))
    assert {Path(p).stem for p in shown} == taken  # each one taken is shown, none drawn by hand


def test_every_environment_variable_read_by_the_code_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    used = set()
    for folder in ("assets", "data_plane", "reasoning_plane", "resources", "sensors", "stack_defs",
                   "plane_cli", "scripts", "tests/browser", "observability"):  # fmt: skip
        for path in (REPO / folder).rglob("*"):
            if path.suffix in {".py", ".sh"}:
                used |= set(re.findall(r"\b(PLANE_[A-Z_]+[A-Z])\b", path.read_text()))
    used = {"PLANE_VECTOR_URL_<REGION>" if u == "PLANE_VECTOR_URL" else u for u in used}
    undocumented = sorted(u for u in used if f"`{u}`" not in readme)
    assert not undocumented, f"README's configuration lacks {undocumented}"
