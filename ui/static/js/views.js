// Renders what the node reports: its identity, resource bars (its own and what it can reach), its
// neighbours, the workload table and the stored data. Pure functions of the API's answers.

import { amountOf, bytes, duration, el, replaceChildren } from "./dom.js";

const KINDS = ["cpu", "memory", "gpu", "storage"];
const TERMINAL = new Set(["completed", "failed", "stopped"]);

export function renderIdentity(target, health) {
  replaceChildren(target,
    el("dt", {}, "Node"), el("dd", { id: "node-id" }, health.node),
    el("dt", {}, "Status"), el("dd", {}, el("span", { class: `badge ${health.status === "ok" ? "running" : "failed"}` }, health.status)),
    el("dt", {}, "Address"), el("dd", {}, health.api_url),
    el("dt", {}, "Uptime"), el("dd", {}, duration(health.uptime_s)),
    el("dt", {}, "Mesh"), el("dd", {}, health.mesh_endpoint),
    el("dt", {}, "Version"), el("dd", {}, health.version));
}

function bar(kind, usage) {
  const capacity = usage.capacity[kind] || 0;
  const allocated = usage.allocated[kind] || 0;
  const share = capacity > 0 ? Math.min(100, (allocated / capacity) * 100) : 0;
  return el("div", { class: "bar-row", dataset: { kind } },
    el("span", { class: "bar-label" }, kind),
    el("div", { class: "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": capacity, "aria-valuenow": allocated,
      "aria-label": `${kind} allocated` },
    el("div", { class: `bar-fill ${share > 90 ? "high" : ""}`, style: `width:${share.toFixed(1)}%` })),
    el("span", { class: "bar-text" },
      `${amountOf(kind, allocated)} of ${amountOf(kind, capacity)} · `,
      el("span", { class: "available" }, `${amountOf(kind, usage.available[kind] || 0)} free`)));
}

export function renderBars(target, usage) {
  replaceChildren(target, KINDS.map((kind) => bar(kind, usage)));
}

// What this node can place work on: itself plus the subtrees of its online children and peers.
function reachable(nodes) {
  const sum = { capacity: {}, allocated: {}, available: {} };
  const parts = [nodes.self.resources];
  for (const neighbour of [...nodes.children, ...nodes.peers]) {
    if (neighbour.status !== "online") continue;
    const part = neighbour.subtree || neighbour.resources;
    if (part) parts.push(part);
  }
  for (const kind of KINDS) {
    sum.capacity[kind] = parts.reduce((total, part) => total + (part.capacity[kind] || 0), 0);
    sum.allocated[kind] = parts.reduce((total, part) => total + (part.allocated[kind] || 0), 0);
    sum.available[kind] = sum.capacity[kind] - sum.allocated[kind];
  }
  return { usage: sum, nodes: parts.length };
}

// Everything this node can reach, once it has neighbours: alone, that would only repeat "This node".
export function renderReachable(container, count, nodes) {
  const reach = reachable(nodes);
  count.textContent = `(${reach.nodes} node${reach.nodes === 1 ? "" : "s"})`;
  if (reach.nodes === 1) {
    replaceChildren(container, el("p", { class: "muted", id: "reachable-alone" }, "No online neighbours: only this node."));
    return;
  }
  renderBars(container, reach.usage);
}

function consoleLink(neighbour) {
  return neighbour.api_url ? el("a", { href: `${neighbour.api_url}/`, title: "open its console" }, neighbour.id) : neighbour.id;
}

function neighbourRow(neighbour) {
  const free = neighbour.resources ? neighbour.resources.available : null;
  return el("tr", { dataset: { node: neighbour.id, role: neighbour.role } },
    el("td", {}, neighbour.role),
    el("td", {}, consoleLink(neighbour)),
    el("td", {}, el("span", { class: `badge ${neighbour.status}`, title: neighbour.incompatible || neighbour.agent || "" },
      neighbour.status === "incompatible" ? "incompatible version" : neighbour.status)),
    el("td", {}, neighbour.last_seen_s === null ? "never" : `${duration(neighbour.last_seen_s)} ago`),
    KINDS.map((kind) => el("td", { class: "num", dataset: { kind } }, free ? amountOf(kind, free[kind]) : "–")));
}

// A large tree's children come a page at a time: the first page is shown, and how many more there are.
function moreChildren(nodes) {
  const summary = nodes.summary;
  if (!nodes.next || !summary) return [];
  const online = summary.children_online === null ? "" : `, ${summary.children_online} of all online`;
  return [el("tr", { id: "more-children" }, el("td", { colspan: 8, class: "muted" },
    `${summary.children - nodes.children.length} more children not shown (${summary.children} in all${online}): ` +
    `GET /api/nodes?after=${nodes.next} pages through them`))];
}

export function renderNeighbours(target, nodes) {
  const rows = [nodes.parent, ...nodes.peers, ...nodes.children].filter(Boolean).map(neighbourRow);
  replaceChildren(target, rows.length ? [...rows, ...moreChildren(nodes)]
    : el("tr", {}, el("td", { colspan: 8, class: "empty" }, "no parent, peers or children")));
}

function requirements(record) {
  const need = record.requirements || {};
  return KINDS.filter((kind) => need[kind]).map((kind) => amountOf(kind, need[kind])).join(", ") || "–";
}

// What a service's address opens: a model service's /info, a gateway's bucket list (its root is S3).
const SERVICE_PAGE = { mlmodel: "/info", opencv: "/info", datagateway: "/" };

function endpointLink(record) {
  if (!record.endpoint) return "–";
  if (record.status !== "running") return el("span", { class: "muted", title: `${record.status}: not serving` }, record.endpoint);
  return el("a", { href: record.endpoint + (SERVICE_PAGE[record.type] || ""), target: "_blank", rel: "noopener" },
    record.endpoint);
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

// The replica count over time as a step line, from the deployment's creation through the autoscaler's
// decisions (its last 20) to now, drawn from 0 to its max_replicas.
function replicaSteps(history, replicas, createdAt, now) {
  const first = history.length ? history[0].from : replicas;
  const steps = [[Math.min(createdAt, history.length ? history[0].at : now), first]];
  for (const decision of history) steps.push([decision.at, steps[steps.length - 1][1]], [decision.at, decision.to]);
  steps.push([now, replicas]);
  return steps;
}

function replicaChart(deployment, createdAt, now) {
  const { autoscale } = deployment;
  const steps = replicaSteps(autoscale.history, deployment.replicas, createdAt, now);
  const [width, height] = [160, 32];
  const start = steps[0][0];
  const span = Math.max(now - start, 1);
  const top = Math.max(autoscale.policy.max_replicas, ...steps.map(([, count]) => count), 1);
  const y = (count) => (height - 1 - count / top * (height - 3)).toFixed(1);
  const points = steps.map(([at, count]) => `${((at - start) / span * width).toFixed(1)},${y(count)}`);
  const counts = steps.map(([, count]) => count);
  return svg("svg", { class: "replica-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "data-points": counts.join(",") },
  svg("title", {}, `replicas over the last ${duration(span)} (max ${top}): ${counts.join(" → ")}`),
  svg("line", { x1: 0, x2: width, y1: y(top), y2: y(top), stroke: "#dde2e7", "stroke-dasharray": "3 3" }),
  svg("polyline", { points: points.join(" "), fill: "none", stroke: "currentColor", "stroke-width": 1.5 }));
}

// What the autoscaler sees and did: bounds, the signal against its target, a resource limit, the count over time.
function autoscaleOf(deployment, createdAt, now) {
  const { autoscale } = deployment;
  const policy = autoscale.policy;
  const limited = autoscale.limited ? ` · limited at ${autoscale.limited.replicas}: ${autoscale.limited.reason}` : "";
  return el("div", { class: "autoscale" },
    el("small", {}, `autoscale ${policy.min_replicas}–${policy.max_replicas} · ${autoscale.signal ?? 0} ongoing `
      + `(target ${policy.target_ongoing_requests} per replica)${limited}`),
    replicaChart(deployment, createdAt, now));
}

// A deployment runs on its replicas' nodes.
// Its revision (and a rollout under way), its count, then one line per replica with the revision it runs.
function replicasOn(deployment, createdAt, now) {
  const rollout = deployment.rollout;
  const revision = `revision ${deployment.revision || 1}` + (rollout
    ? ` → ${rollout.revision}${rollout.promoted ? "" : " (canary: promote to go on)"}` : "");
  return el("div", { class: "replicas" },
    el("div", { class: "summary" }, `${deployment.summary} · ${revision}`),
    deployment.autoscale ? autoscaleOf(deployment, createdAt, now) : null,
    deployment.instances.map((instance) => el("small", {
      class: `replica ${instance.retired_because ? "retired" : ""}`, dataset: { replica: instance.id },
      title: instance.retired_because || `${instance.restarts || 0} restart(s)`,
    }, `${instance.id.split("-").pop()} · r${instance.revision || 1} · ${instance.node || "–"} · ${instance.retired_because ? "draining" : instance.status}`)));
}

// Where it runs; for a delegated workload that went further than the node it was handed to, the hop too.
function runsOn(record, now) {
  if (record.deployment) return replicasOn(record.deployment, record.created_at, now);
  const node = record.node || record.delegated_to || "–";
  return record.delegated_to && record.delegated_to !== node ? `${node} (via ${record.delegated_to})` : node;
}

// A stream: its last snapshot (boxes drawn; loaded by the page, which holds the token), state, rate and events.
function streamOf(record) {
  const stream = record.stream || {};
  const state = stream.state || "starting";
  const error = state === "reconnecting" && stream.last_error ? ` · ${stream.last_error}` : "";
  return el("div", { class: "stream", dataset: { state } },
    el("img", { class: "snapshot", alt: `last event of ${record.name}`, width: 160, hidden: !stream.last_snapshot,
      dataset: { snapshot: `/api/workloads/${encodeURIComponent(record.id)}/snapshots/latest`,
        version: stream.last_snapshot || "" } }),
    el("small", { class: "stream-state" },
      `${state} · ${stream.sampled_fps ?? 0} fps · ${stream.events ?? 0} events · ${stream.frames_dropped ?? 0} dropped${error}`));
}

function workloadRow(record, now, act) {
  const stoppable = !TERMINAL.has(record.status) && record.type !== "data";
  return el("tr", { dataset: { id: record.id, status: record.status, type: record.type } },
    el("td", {}, el("div", { class: "name" }, record.name), el("small", { class: "muted" }, record.id)),
    el("td", {}, record.type),
    el("td", {}, el("span", { class: `badge ${record.status}`, title: record.message || "" }, record.status)),
    el("td", {}, runsOn(record, now)),
    el("td", { class: "endpoint" }, record.type === "stream" && !record.remote ? streamOf(record) : endpointLink(record)),
    el("td", {}, requirements(record)),
    el("td", { class: "num" }, record.restarts || 0),
    el("td", {}, duration(now - record.created_at)),
    el("td", { class: "actions" },
      record.type === "data" || record.deployment ? null  // a deployment's logs are its replicas'
        : el("button", { type: "button", class: "small", onclick: () => act("logs", record) }, "Logs"),
      stoppable ? el("button", { type: "button", class: "small", onclick: () => act("stop", record) }, "Stop") : null,
      el("button", { type: "button", class: "small danger", onclick: () => act("delete", record) }, "Delete")));
}

// The workloads the node gave for the table's filters (filtered: some filter is set).
export function renderWorkloads(target, workloads, filtered, act) {
  const now = Date.now() / 1000;
  replaceChildren(target, workloads.length ? workloads.map((record) => workloadRow(record, now, act))
    : el("tr", {}, el("td", { colspan: 9, class: "empty" },
      filtered ? "no workload matches the filter" : "no workloads yet")));
}

export function renderModels(target, usage, cache) {
  usage.textContent = `(${bytes(cache.cached_bytes)} of ${bytes(cache.cache_bytes)} cached)`;
  replaceChildren(target, cache.models.length ? cache.models.map((model) => el("tr", {},
    el("td", { class: "data-key", title: model.sha256 || "" }, model.sha256 ? model.sha256.slice(0, 12) : "…"),
    el("td", {}, model.source),
    el("td", {}, model.kind),
    el("td", {}, model.status === "fetching"
      ? [el("progress", { max: model.size_bytes, value: model.received_bytes }),
         ` ${bytes(model.received_bytes)} of ${bytes(model.size_bytes)}`]
      : model.status),
    el("td", { class: "num" }, bytes(model.size_bytes)),
    el("td", {}, model.users.join(", ") || "none")))
    : el("tr", {}, el("td", { colspan: 6, class: "empty" }, "no models on this node")));
}

export function renderData(target, items) {
  replaceChildren(target, items.length ? items.map((item) => el("tr", { dataset: { key: item.data_key } },
    el("td", { class: "data-key" }, item.data_key),
    el("td", {}, item.name),
    el("td", {}, item.kind),
    el("td", { class: "num" }, item.file_count),
    el("td", { class: "num" }, bytes(item.size_bytes))))
    : el("tr", {}, el("td", { colspan: 5, class: "empty" }, "no data stored on this node")));
}
