// The console's page: loads the node's state, keeps it fresh (a cheap revision poll every few seconds, a
// full reload every 30 s and after every action) and wires the forms, filters and row actions. The workload table
// holds the newest workloads that pass its filters, a page of them (filtered by the node), and more on request.

import { ApiError, get, getImage, onTokenNeeded, request, setToken, token, upload } from "./api.js";
import { replaceChildren } from "./dom.js";
import { readForm, renderFields, showErrors } from "./forms.js";
import { predict, renderServiceOptions } from "./tryit.js";
import { renderBars, renderData, renderIdentity, renderModels, renderNeighbours, renderReachable,
  renderWorkloads } from "./views.js";

const WATCH_PERIOD_MS = 2000;
const REFRESH_PERIOD_MS = 30000;
const PAGE = 100;  // workloads shown at first, and how many more "Show older" adds
const PAGE_MAX = 1000;  // the most the node gives in one answer
const SERVICES = "/api/workloads?type=mlmodel,opencv&status=running&reverse=true&limit=1000";  // for Try it
const DATA = `/api/data?limit=${PAGE}&reverse=true`;  // the newest uploads
const $ = (id) => document.getElementById(id);

// shown: how many of the newest workloads the table asks for; older: whether there are more; asked: refreshes begun
// (one that ended after a later one began is not shown); snapshots: path → [version, blob URL].
const state = { workloads: [], shown: PAGE, older: false, asked: 0, revision: null, snapshots: new Map() };
const TERMINAL = new Set(["completed", "failed", "stopped"]);

function showBanner(message) {
  $("banner").textContent = message || "";
  $("banner").hidden = !message;
}

function workloadsPage() {
  const query = new URLSearchParams({ limit: state.shown, reverse: "true" });
  if ($("filter-status").value) query.set("status", $("filter-status").value);
  if ($("filter-type").value) query.set("type", $("filter-type").value);
  return `/api/workloads?${query}`;
}

function renderTable() {
  const filtered = Boolean($("filter-status").value || $("filter-type").value);
  renderWorkloads($("workload-rows"), state.workloads, filtered, act);
  const count = state.workloads.length;
  $("workload-count").textContent = !state.older ? `(${count})`
    : count < PAGE_MAX ? `(newest ${count})` : `(newest ${count}; filter to find older ones)`;
  $("show-older").hidden = !state.older || count >= PAGE_MAX;
  showSnapshots();
}

// Each stream's last snapshot, fetched with the token when it changed (its name counts up), kept as a blob URL.
async function showSnapshots() {
  for (const img of document.querySelectorAll("img[data-snapshot]")) {
    const { snapshot: path, version } = img.dataset;
    if (!version) continue;
    let [shown, url] = state.snapshots.get(path) || [];
    if (shown !== version) {
      try {
        url = URL.createObjectURL(await getImage(path));
      } catch {
        continue;
      }
      if (state.snapshots.has(path)) URL.revokeObjectURL(state.snapshots.get(path)[1]);
      state.snapshots.set(path, [version, url]);
    }
    img.src = url;
  }
}

// Streams change without the ledger changing (frames, events): while one runs, the page follows it.
const streaming = () => state.workloads.some((record) => record.type === "stream" && !TERMINAL.has(record.status));

async function refresh() {
  const asked = ++state.asked;
  try {
    const [health, resources, nodes, workloads, services, data, models] = await Promise.all([
      get("/api/health"), get("/api/resources"), get("/api/nodes"), get(workloadsPage()), get(SERVICES),
      get(DATA), get("/api/models")]);
    if (asked !== state.asked) return;  // a later refresh (a filter changed meanwhile) shows its own answer
    state.revision = health.revision;
    state.workloads = workloads.workloads;
    state.older = workloads.next !== null;
    document.title = `CNET · ${health.node}`;
    $("title-node").textContent = health.node;
    renderIdentity($("identity"), health);
    renderBars($("bars-node"), resources);
    renderReachable($("bars-reachable"), $("reachable-count"), nodes);
    showTokenState();
    renderNeighbours($("neighbour-rows"), nodes);
    renderTable();
    renderServiceOptions($("tryit-service"), services.workloads);
    renderData($("data-rows"), data.data);
    $("data-count").textContent = data.next === null ? `(${data.count})` : `(newest ${data.count})`;
    renderModels($("model-rows"), $("model-cache-use"), models);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showBanner("");
  } catch (error) {
    showBanner(`Cannot reach this node's API: ${error.message}`);
  }
}

// Poll the node's revision; reload everything when it moved (a change here, on a neighbour, or a liveness change).
async function watch() {
  try {
    const health = await get("/api/health");
    if (health.revision !== state.revision || streaming()) await refresh();
  } catch (error) {
    showBanner(`Cannot reach this node's API: ${error.message}`);
  }
}

async function showLogs(record) {
  const logs = await get(`/api/workloads/${encodeURIComponent(record.id)}/logs?tail=200`);
  $("logs-title").textContent = record.name;
  $("logs-stdout").textContent = logs.stdout || "(empty)";
  $("logs-stderr").textContent = logs.stderr || "(empty)";
  $("logs-dialog").showModal();
}

async function act(action, record) {
  const path = `/api/workloads/${encodeURIComponent(record.id)}`;
  try {
    if (action === "logs") await showLogs(record);
    else if (action === "stop") await request("POST", `${path}/stop`);
    else if (action === "delete" && confirm(`Delete ${record.name} (${record.id})?`)) await request("DELETE", path);
  } catch (error) {
    showBanner(`${action} ${record.name}: ${error.message}`);
    return;
  }
  if (action !== "logs") await refresh();
}

function showTypeFields() {
  const type = $("f-type").value;
  if ($("type-fields").dataset.type === type) return;  // keep what was typed
  $("type-fields").dataset.type = type;
  replaceChildren($("type-fields"), renderFields(type));
  $("submit-error").hidden = true;
}

async function submit(event) {
  event.preventDefault();
  const form = $("submit-form");
  const type = $("f-type").value;
  const parsed = readForm(type, form);
  showErrors(form, parsed.errors || {});
  $("submit-error").hidden = true;
  $("submit-result").hidden = true;
  if (parsed.errors) return;
  $("submit-button").disabled = true;
  const progress = $("upload-progress");
  try {
    let answer;
    if (parsed.upload) {
      progress.value = 0;
      progress.hidden = false;
      answer = await upload("/api/workloads", parsed.upload, (share) => { progress.value = share; });
      $("submit-result").textContent = `Stored ${answer.files.length} file(s) as data_key ${answer.data_key}`;
      for (const picker of form.querySelectorAll("input[type=file]")) picker.value = "";
    } else {
      answer = await request("POST", "/api/workloads", { json: parsed.json });
      $("submit-result").textContent = `${answer.name} (${answer.id}) is ${answer.status} on ${answer.node}`;
    }
    $("submit-result").hidden = false;
  } catch (error) {
    $("submit-error").textContent = error instanceof ApiError && error.code
      ? `The node refused it (${error.code}): ${error.message}` : error.message;
    $("submit-error").hidden = false;
  } finally {
    $("submit-button").disabled = false;
    progress.hidden = true;
  }
  await refresh();
}

async function tryIt(event) {
  event.preventDefault();
  const file = $("tryit-image").files[0];
  const confidence = Number($("tryit-confidence").value);
  const problem = !$("tryit-service").value ? "start an mlmodel or opencv service first"
    : !file ? "choose an image" : !(confidence >= 0 && confidence <= 1) ? "confidence is a number from 0 to 1" : "";
  $("tryit-error").textContent = problem;
  $("tryit-error").hidden = !problem;
  if (problem) return;
  $("tryit-button").disabled = true;
  try {
    await predict({ workloadId: $("tryit-service").value, file, confidence, canvas: $("tryit-canvas"), list: $("tryit-detections") });
  } catch (error) {
    $("tryit-error").textContent = error.message;
    $("tryit-error").hidden = false;
  } finally {
    $("tryit-button").disabled = false;
  }
}

// The Token button says whether this console sends one.
function showTokenState() {
  const button = $("token-button");
  button.textContent = token() ? "Token: set" : "Token: none";
  button.title = token() ? "this console sends a bearer token; click to change or clear it" : "click to enter the node's token";
}

function askForToken(reason) {
  const dialog = $("token-dialog");
  $("token-reason").textContent = reason || "This node needs its token.";
  $("token-input").value = token();
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? $("token-input").value.trim() : null), { once: true });
  });
}

function start() {
  onTokenNeeded(async (reason) => { const entered = await askForToken(reason); showTokenState(); return entered; });
  showTokenState();
  $("token-button").addEventListener("click", async () => {
    const entered = await askForToken("Set the token this console sends (empty: none).");
    if (entered !== null) { setToken(entered); showTokenState(); await refresh(); }
  });
  $("refresh").addEventListener("click", refresh);
  $("f-type").addEventListener("change", showTypeFields);
  $("submit-form").addEventListener("submit", submit);
  $("tryit-form").addEventListener("submit", tryIt);
  $("filter-status").addEventListener("change", refresh);
  $("filter-type").addEventListener("change", refresh);
  $("show-older").addEventListener("click", () => { state.shown = Math.min(PAGE_MAX, state.shown + PAGE); refresh(); });
  showTypeFields();
  refresh();
  setInterval(watch, WATCH_PERIOD_MS);
  setInterval(refresh, REFRESH_PERIOD_MS);
}

start();
