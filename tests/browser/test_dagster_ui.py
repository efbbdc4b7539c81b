"""The operator's tour of the Dagster UI, end to end, in headless Chromium.

`dagster dev` (webserver + daemon) runs on the embedded defaults (PostgreSQL instance storage in
a temporary ``PLANE_STATE_DIR``, a temporary ``DAGSTER_HOME``) on a free loopback port. Playwright
drives Debian's Chromium (``/usr/bin/chromium``, or ``PLANE_CHROMIUM``; no browser download) to:

1. find the asset lineage with every layer group;
2. select the support tickets up to their chunks in the lineage and materialize them from the
   launchpad; see the run succeed;
3. turn on ``placement_sensor``, see its tick place ``embeddings/support_tickets`` on this machine
   (declared an EU, GDPR-certified zone) and read the decision in the tick's logs;
4. open the placed run: its ``plane/*`` tags carry the decision summary; it succeeds, and the
   asset shows the placement EXPLAIN table;
5. materialize ``plane/team_spend`` and see the per-team spend, budget and quota view;
6. serving: ``plane run`` the served models' catalog records, ``serving/endpoints`` and
   ``serving/residency_plan``, and read the endpoints table (with its check) and the plan.

Screenshots of every step go to ``docs/screenshots/`` (``PLANE_SCREENSHOTS_DIR`` to put them
elsewhere); the README's tour shows them.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # the dev extra is not installed
    sync_playwright = None  # type: ignore[assignment]

from assets.tags import LAYER_GROUPS

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SEED = REPO / "examples" / "seed_scenario"
CHROMIUM = Path(os.environ.get("PLANE_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("PLANE_SCREENSHOTS_DIR") or REPO / "docs" / "screenshots")
STARTUP_S = 180
IN_PROCESS = "execution:\n  config:\n    in_process: {}\n"
RUN_S = 240  # one run, from launch to success, on a slow shared machine

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set PLANE_CHROMIUM)",
    ),
    pytest.mark.skipif(
        sync_playwright is None, reason="playwright is not installed: pip install -e '.[dev]'"
    ),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _instance_yaml(state: Path) -> str:
    """This repository's dagster.yaml with its local folders moved into ``state``."""
    text = (REPO / "dagster.yaml").read_text()
    for old in ("base_dir: .plane/dagster/compute_logs", "base_dir: .plane/dagster\n"):
        assert old in text, f"dagster.yaml no longer has {old!r}; update this test"
    text = text.replace(
        "base_dir: .plane/dagster/compute_logs", f"base_dir: {state}/dagster/compute_logs"
    )
    return text.replace("base_dir: .plane/dagster\n", f"base_dir: {state}/dagster\n")


def _stop_embedded_postgres(state: Path) -> None:
    """Stop the embedded server if the processes that used it died without stopping it."""
    pid_file = state / "pg" / "postmaster.pid"
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    if pid_file.exists():
        pid = int(pid_file.read_text().splitlines()[0])
        with contextlib.suppress(ProcessLookupError):  # it stopped meanwhile
            os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dagster dev`` on a free loopback port; yields its base URL."""
    root = tmp_path_factory.mktemp("dagster-ui")
    home, state = root / "home", root / "state"
    home.mkdir()
    state.mkdir()
    (home / "dagster.yaml").write_text(_instance_yaml(state))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLANE_STATE_DIR": str(state),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # this machine is the fleet; it declares itself an EU zone with GDPR controls, so the
        # EU support tickets may be placed on it
        "PLANE_LOCAL_ZONE": "EU",
        "PLANE_LOCAL_CERTIFICATIONS": "ISO27001,GDPR",
        "PLANE_QUOTAS_FILE": str(SEED / "quotas.yaml"),
        "PLANE_BUDGETS_FILE": str(SEED / "budgets.yaml"),
    }
    # the embedded defaults, whatever this shell points at
    for name in [n for n in env if n.startswith(("PLANE_VECTOR_URL_", "DAGSTER_PG_"))] + [
        "PLANE_DATABASE_URL",
        "PLANE_FLEET_FILE",
        "PLANE_SOURCES_FILE",
        "PLANE_POLICY_FILE",
        "PLANE_PLACEMENT_POLICY",
        "PLANE_LOCAL_CPU_SLOTS",
    ]:
        env.pop(name, None)
    _ENV.clear()
    _ENV.update(env)  # `plane run` in the tour runs with dagster dev's environment
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (root / "dagster-dev.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # a shell's background job ignores SIGINT; dagster dev shuts down on SIGINT/SIGTERM only
        # when SIGINT has its default handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    def tail() -> str:
        log.flush()
        return (root / "dagster-dev.log").read_text()[-4000:]

    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited with {proc.returncode}:\n{tail()}")
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster dev did not answer within {STARTUP_S} s:\n{tail()}")
            time.sleep(1)
        yield base
    finally:
        print(f"dagster dev log (last lines):\n{tail()}")
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _stop_embedded_postgres(state)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


_ENV: dict[str, str] = {}
_STARTED = [time.monotonic()]  # when the tour started, for the step timings it prints


def _shot(page: "Page", name: str, *, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(800)  # let dialogs finish fading in and tables finish loading
    expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
    print(f"{time.monotonic() - _STARTED[0]:6.1f} s  {name}")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def _wait_for_run(page: "Page", what: str) -> None:
    """On a run's page: wait until its status is Success; fail at once on Failure."""
    deadline = time.monotonic() + RUN_S
    success = page.get_by_text("Success", exact=True).first
    failure = page.get_by_text(re.compile(r"^(Failure|Canceled)$")).first
    while time.monotonic() < deadline:
        if success.is_visible():
            return
        if failure.is_visible():
            shot = Path(tempfile.gettempdir()) / "plane-browser-failed-run.png"
            page.screenshot(path=str(shot))
            errors = page.get_by_text(re.compile("STEP_FAILURE|RUN_FAILURE|Error")).all()
            pytest.fail(
                f"{what}: the run failed ({page.url}; screenshot {shot}):\n"
                + "\n".join(e.inner_text()[:2000] for e in errors[:5])
            )
        page.wait_for_timeout(1000)
    pytest.fail(f"{what}: the run did not succeed within {RUN_S} s ({page.url})")


def _open_launched_run(page: "Page", base: str) -> None:
    """Follow the "View" link of the toast that confirms a launched run."""
    view = page.get_by_role("link", name="View", exact=True).first
    expect(view).to_be_visible(timeout=60_000)
    href = view.get_attribute("href")
    assert href and href.startswith("/runs/"), href
    page.goto(base + href)


def test_operator_tour(dagster_ui: str) -> None:
    started = _STARTED[0] = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        # On a loopback origin the UI asks once to join the community; mark it as seen (the
        # UI's own localStorage key), and should it show anyway, skip it before any action.
        page.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
        page.add_locator_handler(
            page.get_by_role("button", name="Skip"), lambda button: button.click()
        )

        # 1. the asset lineage has one group per layer
        page.goto(f"{dagster_ui}/asset-groups")
        expect(page.get_by_role("button", name="Materialize all")).to_be_visible()
        for group in LAYER_GROUPS:
            expect(page.get_by_text(group, exact=True).first).to_be_visible()
        expect(page.get_by_text("fetching statuses")).to_have_count(0)
        _shot(page, "01-asset-lineage")

        page.goto(f"{dagster_ui}/assets?view=flat")
        expect(page.get_by_text("ingested / customer_orders_eu").first).to_be_visible()
        _shot(page, "02-catalog")

        # 2. materialize the support tickets up to their chunks from the UI
        page.goto(f"{dagster_ui}/asset-groups~%2Bkey%3A%22chunks%2Fsupport_tickets%22/")
        for group in ("ingestion", "governance", "retrieval"):
            expect(page.get_by_text(group, exact=True).first).to_be_visible()
        _shot(page, "03-select-and-materialize")
        # shift-click opens the launchpad: run the three small steps in one process (the
        # default executor, multiprocess, starts a process per step)
        page.get_by_role("button", name="Materialize all").click(modifiers=["Shift"])
        launchpad = page.get_by_role("dialog").filter(has_text="Launchpad")
        editor = launchpad.locator(".CodeMirror").first
        expect(editor).to_contain_text("resources")
        editor.evaluate(f"(el) => el.CodeMirror.setValue({IN_PROCESS!r})")
        expect(launchpad.get_by_text("No errors")).to_be_visible()
        launchpad.get_by_role("button", name=re.compile("Materialize")).click()
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
        # governed data is never run unplaced: the launcher refuses the run, saying how
        expect(page.get_by_text("Failure", exact=True).first).to_be_visible(timeout=RUN_S * 1000)
        expect(page.get_by_text(re.compile("carries no placement decision")).first).to_be_visible()
        _shot(page, "04-run-refused")
        # ... so the operator runs it through the plane: `plane run` places each asset on this
        # machine (declared EU) and runs what was placed, each run with its signed decision
        placed = subprocess.run(
            [str(BIN / "plane"), "run", "--select", "*chunks/support_tickets"],
            cwd=REPO,
            env=_ENV,
            capture_output=True,
            text=True,
            timeout=RUN_S,
            check=False,
        )
        assert placed.returncode == 0, placed.stdout[-3000:] + placed.stderr[-3000:]
        assert "chunks/support_tickets" in placed.stdout and "succeeded" in placed.stdout

        # 3. the placement sensor places the embedding work that is now due
        page.goto(f"{dagster_ui}/locations/reasoning_plane/sensors/placement_sensor")
        toggle = page.locator("input[type=checkbox]").first
        expect(toggle).not_to_be_checked()
        toggle.locator("xpath=..").click()
        expect(toggle).to_be_checked()
        tick = page.get_by_role("row").filter(has_text="1 run requested").first
        expect(tick).to_be_visible(timeout=RUN_S * 1000)
        page.reload()  # the header (latest tick, cursor) does not refresh by itself
        expect(page.get_by_text("embeddings/support_tickets").first).to_be_visible()
        expect(tick).to_be_visible()
        _shot(page, "05-placement-sensor")
        tick.get_by_role("button", name="View logs").click()
        logs = page.get_by_role("dialog")
        expect(logs).to_contain_text(re.compile(r"embeddings/support_tickets: placed local/cpu"))
        expect(logs).to_contain_text("(decision ")
        _shot(page, "06-placement-decision")
        logs.get_by_role("button", name="Done").click()

        # 4. the placed run carries its decision and succeeds
        run_link = tick.locator("a[href^='/runs/']").filter(has_text=re.compile(r"^[0-9a-f]{8}$"))
        page.goto(dagster_ui + str(run_link.first.get_attribute("href")))
        page.get_by_role("button", name="View tags and config").click()
        tags = page.get_by_role("dialog")
        expect(tags).to_contain_text("plane/summary: local (EU) | CPU | est $0.00")
        expect(tags).to_contain_text("plane/explain: plane explain ")
        expect(tags).to_contain_text("plane/team: customer-support")
        _shot(page, "07-placed-run-tags")
        tags.get_by_role("button", name="OK").click()
        _wait_for_run(page, "embed the support tickets where the plane placed them")

        page.goto(f"{dagster_ui}/assets/embeddings/support_tickets")
        expect(page.get_by_text("placement_decision_id").first).to_be_visible()
        expect(page.get_by_text("placement_cluster").first).to_be_visible()
        expect(page.get_by_text("local (EU) | CPU | est $0.00").first).to_be_visible()
        _shot(page, "08-embeddings-with-placement", full_page=True)

        # 5. the per-team spend view
        page.goto(f"{dagster_ui}/assets/plane/team_spend")
        page.get_by_role("button").filter(has_text=re.compile(r"^Materialize$")).click()
        _open_launched_run(page, dagster_ui)
        _wait_for_run(page, "refresh plane/team_spend")
        page.goto(f"{dagster_ui}/assets/plane/team_spend")
        expect(page.get_by_text("spend_chart").first).to_be_visible()
        expect(page.get_by_text("$0.00 of $800.00").first).to_be_visible()  # customer-support
        _shot(page, "09-team-spend", full_page=True)

        # 6. serving: the served models' catalog records, the endpoints as the gateway sees
        # them, and the residency plan, each a table in the asset's latest materialization
        for asset in ("serving/model_catalog", "serving/endpoints", "serving/residency_plan"):
            served = subprocess.run(
                [str(BIN / "plane"), "run", "--select", asset],
                cwd=REPO,
                env=_ENV,
                capture_output=True,
                text=True,
                timeout=RUN_S,
                check=False,
            )
            assert served.returncode == 0, served.stdout[-3000:] + served.stderr[-3000:]
        page.goto(f"{dagster_ui}/assets/serving/endpoints")
        expect(page.get_by_text("eu-fra-gemma").first).to_be_visible()
        # this machine is the fleet: the shipped endpoints' clusters are not in it, and the
        # check beside the table says so
        expect(page.get_by_text("not in fleet").first).to_be_visible()
        expect(page.get_by_text("compliant_endpoints").first).to_be_visible()
        _shot(page, "10-serving-endpoints", full_page=True)
        page.goto(f"{dagster_ui}/assets/serving/endpoints?view=checks")
        expect(page.get_by_text("models_served_compliantly").first).to_be_visible()
        _shot(page, "11-serving-endpoints-check")
        page.goto(f"{dagster_ui}/assets/serving/residency_plan")
        expect(page.get_by_text("plan_by_node").first).to_be_visible()
        expect(page.get_by_text("gemma-3-270m").first).to_be_visible()
        _shot(page, "12-serving-residency-plan", full_page=True)
        browser.close()
    print(f"browser tour: {time.monotonic() - started:.0f} s")
