"""The web console in real Chromium (Playwright, Debian's chromium) against real nodes: submit, stop and
delete through the form, validation, uploads, the try-it panel, a parent seeing its child, the token prompt.
Screenshots go to test-artifacts/ui/ (not committed) for a person to look at."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import cv2
import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.nodes import GIB, Node
from tests.support.streams import mjpeg_server

TOKEN = "ui-test-token"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
UI_TIMEOUT_MS = 30_000  # a hang guard; the page's own watch polls every 2 s


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's chromium instead of a Playwright download (none can be fetched here)."""
    if not os.path.exists(CHROMIUM):
        message = f"chromium not found at {CHROMIUM}: apt-get install -y chromium (make test does)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


NODE_PAIR = {"parent": {"resources": {"cpu": 8, "memory": 16 * GIB, "gpu": 0, "storage": 10 * GIB}, "token": TOKEN},
             "child": {"resources": {"cpu": 2, "memory": 4 * GIB, "gpu": 0, "storage": 1 * GIB}, "token": TOKEN},
             "heartbeat_period_s": 0.5}


@pytest.fixture
def node(parent_and_child: tuple[Node, Node]) -> Node:
    return parent_and_child[0]


@pytest.fixture
def console(page: Page, node: Node) -> Iterator[Page]:
    """The parent's console, its token already entered for this browser session; fails on script errors."""
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.on("console", lambda message: script_errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    page.add_init_script(f"sessionStorage.setItem('cnet-token', {TOKEN!r})")
    page.goto(node.url + "/")
    expect(page.locator("#node-id")).to_have_text(node.node_id)
    yield page
    assert not script_errors, script_errors


DETACHED_MID_SHOT = ("not attached", "not visible or not an HTMLElement")


def screenshot(target: Page | Locator, name: str, **options: Any) -> None:
    """A picture for a person to look at. A row the page re-rendered meanwhile (its refresh replaces the table) is
    found again by its locator and taken again. Playwright names a node detached mid-shot in one of two ways: "not
    attached", or "not visible or not an HTMLElement" when it went while being scrolled into view."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for attempt in range(5):
        try:
            target.screenshot(path=str(SCREENSHOTS / f"{name}.png"), **options)
            return
        except PlaywrightError as exc:
            if not any(sign in str(exc) for sign in DETACHED_MID_SHOT) or attempt == 4:
                raise


def fill_workload(page: Page, workload_type: str, fields: dict[str, str]) -> None:
    page.select_option("#f-type", workload_type)
    for selector, value in fields.items():
        page.fill(selector, value)


def row(page: Page, name: str) -> Locator:
    return page.locator("#workload-rows tr", has=page.locator(".name", has_text=name))


def test_main_view_shows_node_resources_and_is_served_offline(console: Page, node: Node) -> None:
    requested: list[str] = []
    console.on("request", lambda request: requested.append(request.url))
    console.reload()
    expect(console.locator("#node-id")).to_have_text(node.node_id)
    expect(console.locator("#bars-node [data-kind=cpu] .bar-text")).to_contain_text("of 8 cpu")
    expect(console.locator("#bars-node [data-kind=memory] .bar-text")).to_contain_text("of 16.0 GiB")
    assert requested and all(url.startswith(node.url) for url in requested), requested  # no CDN
    console.set_viewport_size({"width": 1366, "height": 768})
    screenshot(console, "main-1366x768", full_page=True)


def test_phone_viewport_has_no_sideways_scroll(console: Page) -> None:
    console.set_viewport_size({"width": 390, "height": 844})
    console.reload()
    expect(console.locator("#bars-node .bar-row")).to_have_count(4)
    overflow = console.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    screenshot(console, "main-phone", full_page=True)
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"


def test_submit_stop_delete_a_process(console: Page, node: Node) -> None:
    fill_workload(console, "process", {"#f-command": "sh", "#f-args": "-c\necho hello-from-ui; exec sleep 300",
                                       "#f-name": "ui-sleeper"})
    screenshot(console.locator("#submit"), "submit-form")
    console.click("#submit-button")
    expect(console.locator("#submit-result")).to_contain_text("ui-sleeper")
    sleeper = row(console, "ui-sleeper")
    expect(sleeper.locator(".badge")).to_have_text("running")
    workload_id = sleeper.get_attribute("data-id")
    assert node.workload(workload_id)["status"] == "running"
    # The Actions cell is a table cell like the others, so the row's lines meet (a flex cell sat off them).
    assert sleeper.locator("td.actions").evaluate("cell => getComputedStyle(cell).display") == "table-cell"
    heights = sleeper.evaluate("row => [...row.cells].map(cell => Math.round(cell.getBoundingClientRect().height))")
    assert len(set(heights)) == 1, heights
    sleeper.get_by_role("button", name="Logs").click()
    expect(console.locator("#logs-stdout")).to_have_text("hello-from-ui")
    console.locator("#logs-dialog").get_by_role("button", name="Close").click()
    console.select_option("#filter-type", "data")
    expect(sleeper).to_have_count(0)
    console.select_option("#filter-type", "process")
    expect(sleeper).to_have_count(1)
    sleeper.get_by_role("button", name="Stop").click()
    expect(sleeper.locator(".badge")).to_have_text("stopped")
    console.once("dialog", lambda dialog: dialog.accept())
    sleeper.get_by_role("button", name="Delete").click()
    expect(sleeper).to_have_count(0)
    assert node.api("GET", f"/api/workloads/{workload_id}").status_code == 404


def test_the_table_shows_the_newest_page_and_older_ones_on_request(console: Page, node: Node) -> None:
    """More workloads than the table's page (100): the newest page shows, newest first, and Show older brings the
    rest. The node applies the filters, so a match older than the page is found too (control: filtering the page
    shown would not find it)."""
    made = [node.submit({"command": "sleep", "args": ["300"]}, {"cpu": 0.001}, name=f"paged-{number}").json()["id"]
            for number in range(max(0, 101 - len(node.workloads())) + 5)]
    try:
        whole = len(node.workloads())
        console.click("#refresh")
        rows = console.locator("#workload-rows tr")
        expect(rows).to_have_count(100)
        expect(console.locator("#workload-count")).to_have_text("(newest 100)")
        expect(rows.first.locator(".name")).to_have_text(f"paged-{len(made) - 1}")
        expect(row(console, "paged-0")).to_have_count(0)
        console.click("#show-older")
        expect(rows).to_have_count(whole)
        expect(console.locator("#workload-count")).to_have_text(f"({whole})")
        expect(console.locator("#show-older")).to_be_hidden()
        expect(rows.last.locator(".name")).not_to_have_text(f"paged-{len(made) - 1}")
        console.reload()  # the newest page again
        expect(rows).to_have_count(100)
        node.api("POST", f"/api/workloads/{made[0]}/stop")
        console.select_option("#filter-status", "stopped")
        expect(row(console, "paged-0").locator(".badge")).to_have_text("stopped")
        expect(row(console, f"paged-{len(made) - 1}")).to_have_count(0)
    finally:
        for workload_id in made:
            node.api("DELETE", f"/api/workloads/{workload_id}")


def test_invalid_values_show_errors_and_send_nothing(console: Page, node: Node) -> None:
    posts: list[str] = []
    console.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    fill_workload(console, "process", {"#f-command": "", "#r-cpu": "-1", "#r-memory": "lots"})
    console.click("#submit-button")
    expect(console.locator("[data-field=command] .field-error")).to_have_text("required")
    expect(console.locator("[data-field=cpu] .field-error")).to_have_text("must be at least 0")
    expect(console.locator("[data-field=memory] .field-error")).to_have_text("expected a number")
    fill_workload(console, "process", {"#f-command": "sleep", "#r-cpu": "1", "#r-memory": "64", "#f-env": "not a pair"})
    console.click("#submit-button")
    expect(console.locator("[data-field=env] .field-error")).to_contain_text("expected NAME=value")
    assert posts == []


def test_server_refusal_shows_the_servers_message(console: Page) -> None:
    fill_workload(console, "process", {"#f-command": "no-such-program-xyz"})
    console.click("#submit-button")
    expect(console.locator("#submit-error")).to_contain_text("'no-such-program-xyz' is not an executable on this node")
    fill_workload(console, "process", {"#f-command": "sleep", "#f-args": "1", "#r-cpu": "1000"})
    console.click("#submit-button")
    expect(console.locator("#submit-error")).to_contain_text("insufficient_resources")


def test_upload_a_file_and_a_directory(console: Page, node: Node, tmp_path: Path) -> None:
    single = tmp_path / "notes.txt"
    single.write_text("hello from the console\n")
    tree = tmp_path / "project"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a" * 1000)
    (tree / "sub" / "b.bin").write_bytes(os.urandom(200_000))
    console.select_option("#f-type", "data")
    console.set_input_files("#f-file", str(single))
    console.click("#submit-button")
    expect(console.locator("#submit-result")).to_contain_text("Stored 1 file(s) as data_key")
    file_key = console.locator("#submit-result").inner_text().rsplit(" ", 1)[-1]
    console.set_input_files("#f-directory", str(tree))
    console.click("#submit-button")
    expect(console.locator("#submit-result")).to_contain_text("Stored 2 file(s) as data_key")
    tree_key = console.locator("#submit-result").inner_text().rsplit(" ", 1)[-1]
    expect(console.locator(f"#data-rows tr[data-key='{file_key}']")).to_contain_text("notes.txt")
    expect(console.locator(f"#data-rows tr[data-key='{tree_key}']")).to_contain_text("directory")
    stored = {item["data_key"]: item for item in node.api("GET", "/api/data").json()["data"]}
    expect(console.locator("#data-count")).to_have_text(f"({len(stored)})")
    expect(console.locator("#data-rows tr").first).to_have_attribute("data-key", tree_key)  # the newest first
    assert stored[file_key]["size_bytes"] == single.stat().st_size
    assert stored[tree_key]["file_count"] == 2 and stored[tree_key]["name"] == "project"
    for key in (file_key, tree_key):
        assert node.api("DELETE", f"/api/data/{key}").status_code == 200


def test_try_it_draws_the_detections(console: Page, node: Node) -> None:
    answer = node.submit({"model_type": "yolo", "model_path": YOLO_MODEL}, {"cpu": 1, "memory": GIB},
                         workload_type="mlmodel", name="ui-yolo")
    assert answer.status_code == 201, answer.text
    service = answer.json()
    try:
        expect(console.locator("#tryit-service option", has_text="ui-yolo")).to_have_count(1)  # shown by the watch
        console.select_option("#tryit-service", service["id"])
        console.set_input_files("#tryit-image", ASTRONAUT)
        console.fill("#tryit-confidence", "0.25")
        console.click("#tryit-button")
        expect(console.locator("#tryit-detections")).to_contain_text("FACE_FEMALE 0.81")
        canvas = console.locator("#tryit-canvas")
        expect(canvas).to_have_attribute("data-count", "1")
        # The box's left edge (bbox x1 ≈ 173, y 83..180) is drawn in the first box colour, #e6194b.
        pixel = console.evaluate("""() => Array.from(document.getElementById('tryit-canvas')
            .getContext('2d').getImageData(173, 130, 1, 1).data)""")
        assert abs(pixel[0] - 0xE6) < 40 and abs(pixel[1] - 0x19) < 40 and abs(pixel[2] - 0x4B) < 40, pixel
        canvas.scroll_into_view_if_needed()
        screenshot(console, "try-it", full_page=True)
    finally:
        node.api("DELETE", f"/api/workloads/{service['id']}")


def test_parent_lists_its_child_and_a_change_made_elsewhere(console: Page, parent_and_child: tuple[Node, Node]) -> None:
    parent, child = parent_and_child
    child_row = console.locator(f"#neighbour-rows tr[data-node='{child.node_id}']")
    expect(child_row).to_contain_text("child")
    expect(child_row.locator(".badge")).to_have_text("online")
    expect(child_row.locator("td[data-kind=cpu]")).to_have_text("2 cpu")
    expect(console.locator("#reachable-count")).to_have_text("(2 nodes)")
    expect(console.locator("#bars-reachable [data-kind=cpu] .bar-text")).to_contain_text("of 10 cpu")
    expect(child_row.locator("a")).to_have_attribute("href", f"{child.url}/")
    # A workload started on the child through its API: the parent's page shows the child's free CPU drop.
    answer = child.submit({"command": "sleep", "args": ["300"]}, {"cpu": 1.5})
    assert answer.status_code == 201, answer.text
    try:
        expect(child_row.locator("td[data-kind=cpu]")).to_have_text("0.50 cpu")
    finally:
        child.api("DELETE", f"/api/workloads/{answer.json()['id']}")
    # With the parent nearly full, the form's workload is delegated; the table says where it runs.
    blocker = parent.submit({"command": "sleep", "args": ["300"]}, {"cpu": 7}).json()
    try:
        fill_workload(console, "process", {"#f-command": "sleep", "#f-args": "300", "#f-name": "ui-delegated",
                                           "#r-cpu": "1.5", "#r-memory": "64"})
        console.click("#submit-button")
        expect(console.locator("#submit-result")).to_contain_text(f"on {child.node_id}")
        delegated = row(console, "ui-delegated")
        expect(delegated.locator("td").nth(3)).to_have_text(child.node_id)
        expect(delegated.locator(".badge")).to_have_text("running")
        console.once("dialog", lambda dialog: dialog.accept())
        delegated.get_by_role("button", name="Delete").click()
        expect(delegated).to_have_count(0)
    finally:
        parent.api("DELETE", f"/api/workloads/{blocker['id']}")


def test_console_asks_for_the_token_once(browser: Browser, node: Node) -> None:
    context = browser.new_context()  # a fresh session: no token yet
    try:
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(node.url + "/")
        # Reads of workloads and data need the token too: one prompt at once, for every refused read.
        expect(page.locator("#token-dialog")).to_be_visible()
        expect(page.locator("#token-button")).to_have_text("Token: none")
        page.fill("#token-input", "wrong-token")
        page.click("#token-ok")
        expect(page.locator("#token-dialog")).to_be_hidden()
        expect(page.locator("#banner")).to_contain_text("Authorization: Bearer")  # what is wrong, said
        page.click("#token-button")
        page.fill("#token-input", TOKEN)
        page.click("#token-ok")
        expect(page.locator("#node-id")).to_have_text(node.node_id)
        expect(page.locator("#token-button")).to_have_text("Token: set")
        fill_workload(page, "process", {"#f-command": "true", "#f-name": "ui-token-1"})
        page.click("#submit-button")
        expect(page.locator("#submit-result")).to_contain_text("ui-token-1")
        fill_workload(page, "process", {"#f-name": "ui-token-2"})
        page.click("#submit-button")
        expect(page.locator("#submit-result")).to_contain_text("ui-token-2")
        expect(page.locator("#token-dialog")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('cnet-token')") == TOKEN
    finally:
        context.close()
        for workload in node.workloads():
            if workload["name"].startswith("ui-token"):
                node.api("DELETE", f"/api/workloads/{workload['id']}")


def test_a_service_links_to_what_it_serves_only_while_running(console: Page, node: Node) -> None:
    service = node.submit({"cascade_type": "face"}, {"cpu": 0.5}, workload_type="opencv", name="ui-faces").json()
    try:
        console.click("#refresh")
        link = row(console, "ui-faces").locator("td.endpoint a")
        expect(link).to_have_attribute("href", f"{service['endpoint']}/info")
        assert requests.get(link.get_attribute("href"), timeout=10).ok  # a page, not a JSON 404
        node.api("POST", f"/api/workloads/{service['id']}/stop")
        console.click("#refresh")
        expect(row(console, "ui-faces").locator(".badge")).to_have_text("stopped")
        expect(row(console, "ui-faces").locator("td.endpoint a")).to_have_count(0)  # nothing to open
        expect(row(console, "ui-faces").locator("td.endpoint")).to_have_text(service["endpoint"])
    finally:
        node.api("DELETE", f"/api/workloads/{service['id']}")


def test_a_node_alone_says_so_instead_of_repeating_itself(browser: Browser, start_node) -> None:
    alone = start_node()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(alone.url + "/")
        expect(page.locator("#node-id")).to_have_text(alone.node_id)
        expect(page.locator("#reachable-alone")).to_have_text("No online neighbours: only this node.")
        expect(page.locator("#bars-reachable .bar-row")).to_have_count(0)
    finally:
        context.close()


def test_a_node_with_a_child_shows_what_it_reaches(console: Page) -> None:
    expect(console.locator("#bars-reachable .bar-row")).to_have_count(4)  # control: bars, once there is a child
    expect(console.locator("#reachable-alone")).to_have_count(0)


def test_the_model_cache_shows_a_fetch_in_flight(console: Page, node: Node, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import onnx

    from tests.support.file_server import FileServer

    model = onnx.load(YOLO_MODEL)
    model.doc_string = "bytes of its own: the node may hold the YOLO model already, as a file it deployed"
    onnx.save(model, str(tmp_path / "slow.onnx"))
    with FileServer(tmp_path, chunk_delay_s=0.05) as slow, ThreadPoolExecutor(1) as pool:  # about 9 s
        deployed = pool.submit(node.submit, {"model_type": "yolo", "model_path": f"{slow.url}/slow.onnx"},
                               {"cpu": 0.5}, workload_type="mlmodel")
        row = console.locator("#model-rows tr", has_text="slow.onnx")
        expect(row.locator("progress")).to_be_visible()  # the console follows the fetch: bytes of total
        expect(row).to_contain_text(" of 11.6 MiB")  # bytes of total
        answer = deployed.result()
    assert answer.status_code == 201, answer.text
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text(answer.json()["id"])  # used by the deployment
    console.screenshot(path=str(SCREENSHOTS / "model-cache.png"), full_page=True)
    node.api("DELETE", f"/api/workloads/{answer.json()['id']}")
    node.api("DELETE", f"/api/models/{answer.json()['config']['model_sha256']}")


def test_a_deployment_of_replicas_is_submitted_and_shown_with_its_instances(console: Page, node: Node) -> None:
    fill_workload(console, "opencv", {"#d-replicas": "2", "#f-name": "ui-replicas", "#r-cpu": "0.2"})
    console.click("#submit-button")
    expect(console.locator("#submit-result")).to_contain_text("ui-replicas")
    deployment = row(console, "ui-replicas")
    expect(deployment.locator(".badge")).to_have_text("running")
    expect(deployment.locator(".replicas .summary")).to_have_text("running 2/2 · revision 1")
    expect(deployment.locator(".replica")).to_have_count(2)
    expect(deployment.locator(".replica").first).to_contain_text("0 · r1 · ")
    screenshot(deployment, "deployment-row")
    workload_id = deployment.get_attribute("data-id")
    assert node.workload(workload_id)["deployment"]["replicas"] == 2
    console.once("dialog", lambda dialog: dialog.accept())
    deployment.get_by_role("button", name="Delete").click()
    expect(deployment).to_have_count(0)
    assert node.api("GET", f"/api/workloads/{workload_id}-r0").status_code == 404


def test_an_autoscaled_deployment_shows_its_bounds_signal_and_count_over_time(console: Page, node: Node) -> None:
    created = node.submit({"cascade_type": "face"}, {"cpu": 0.1}, workload_type="opencv", id="ui-auto",
                          autoscale={"min_replicas": 1, "max_replicas": 2})
    assert created.status_code == 201, created.text
    try:
        deployment = row(console, "ui-auto")
        expect(deployment.locator(".autoscale small")).to_have_text("autoscale 1–2 · 0 ongoing (target 2 per replica)")
        expect(deployment.locator("svg.replica-chart")).to_have_attribute("data-points", "1,1")  # no decision yet: created at 1, 1 now
        assert node.api("PATCH", "/api/workloads/ui-auto", json={"autoscale": {"min_replicas": 2}}).status_code == 200
        expect(deployment.locator("svg.replica-chart")).to_have_attribute("data-points", "1,1,2,2")
        expect(deployment.locator("svg.replica-chart title")).to_contain_text("1 → 1 → 2 → 2")
        expect(deployment.locator(".replicas .summary")).to_have_text("running 2/2 · revision 1")
        screenshot(deployment, "autoscaled-deployment-row")
    finally:
        node.api("DELETE", "/api/workloads/ui-auto")


def test_replicas_take_a_whole_number_and_only_for_services(console: Page) -> None:
    fill_workload(console, "opencv", {"#d-replicas": "1.5"})
    console.click("#submit-button")
    expect(console.locator("[data-field=replicas] .field-error")).to_have_text("expected a whole number")
    console.select_option("#f-type", "process")
    expect(console.locator("#d-replicas")).to_have_count(0)


def test_a_stream_shows_its_last_snapshot_rate_and_state(console: Page, node: Node) -> None:
    jpeg = cv2.imencode(".jpg", cv2.resize(cv2.imread(ASTRONAUT), (640, 480)))[1].tobytes()
    with mjpeg_server([jpeg]) as camera:
        node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv", id="ui-faces")
        answer = node.submit({"source": camera, "detector": "ui-faces", "fps": 2, "snapshot": True}, {"cpu": 1},
                             workload_type="stream", id="ui-cam")
        assert answer.status_code == 201, answer.text
        try:
            stream = row(console, "stream-ui-cam").locator(".stream")
            expect(stream).to_have_attribute("data-state", "running")  # followed while it runs (no reload)
            expect(stream.locator(".stream-state")).to_contain_text("events")
            snapshot = stream.locator("img.snapshot")
            expect(snapshot).to_be_visible()
            console.wait_for_function("() => document.querySelector('#workload-rows img.snapshot').naturalWidth === 640")
            screenshot(row(console, "stream-ui-cam"), "stream-row")
        finally:
            node.api("DELETE", "/api/workloads/ui-cam")
            node.api("DELETE", "/api/workloads/ui-faces")
