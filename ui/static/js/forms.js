// The submit form: which fields each workload type takes, how they are drawn, and how their values are
// checked and turned into the API's request body before anything is sent.

import { el } from "./dom.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESTART = ["never", "on-failure", "always"];
const SERVICE_PORT = { name: "service_port", label: "Service port", kind: "int", min: 1, max: 65535,
  help: "empty: the node picks a free port" };

export const TYPES = {
  process: [
    { name: "command", label: "Command", kind: "text", required: true, placeholder: "python3",
      help: "an executable on the node; arguments go below" },
    { name: "args", label: "Arguments", kind: "lines", help: "one per line" },
    { name: "env", label: "Environment", kind: "pairs", help: "NAME=value, one per line" },
    { name: "working_dir", label: "Working directory", kind: "text" },
    { name: "restart", label: "Restart", kind: "select", options: RESTART },
  ],
  container: [
    { name: "image", label: "Image", kind: "text", required: true, placeholder: "docker.io/library/alpine:3.20" },
    { name: "command", label: "Command", kind: "lines", help: "one argument per line; empty: the image's" },
    { name: "env", label: "Environment", kind: "pairs", help: "NAME=value, one per line" },
    { name: "ports", label: "Ports", kind: "ports", help: "8080/tcp=18080, one per line (no host port: a random one)" },
    { name: "volumes", label: "Volumes", kind: "volumes", help: "/host/path:/in/container[:ro], one per line" },
    { name: "working_dir", label: "Working directory", kind: "text" },
    { name: "network_mode", label: "Network mode", kind: "text", placeholder: "bridge" },
    { name: "restart", label: "Restart", kind: "select", options: RESTART },
  ],
  mlmodel: [
    { name: "model_type", label: "Model type", kind: "select", options: ["yolo", "pytorch", "tflite", "tensorflow"] },
    { name: "model_path", label: "Model path", kind: "text", required: true, placeholder: "/models/yolov8n.onnx",
      help: "an ONNX (yolo), TorchScript (pytorch) or TFLite file, or a zip of a SavedModel (tensorflow): a path, data://, http(s)://, s3://" },
    SERVICE_PORT,
  ],
  opencv: [
    { name: "cascade_type", label: "Cascade", kind: "select", options: ["face", "eye", "smile"] },
    SERVICE_PORT,
  ],
  datagateway: [
    { name: "base_path", label: "Base path", kind: "text", required: true, placeholder: "/tmp/cnet_data",
      help: "the directory served read-only over S3" },
    { name: "bucket", label: "Bucket", kind: "text", placeholder: "cnet", pattern: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      patternHelp: "3-63 lowercase letters, digits, '.' and '-'" },
    SERVICE_PORT,
  ],
  data: [
    { name: "file", label: "File", kind: "file" },
    { name: "directory", label: "…or a directory", kind: "directory" },
  ],
};

const NAME = { name: "name", label: "Name", kind: "text", placeholder: "optional" };
// A model service may be a deployment: N replicas behind one endpoint (top-level fields of the body).
const REPLICABLE = new Set(["mlmodel", "opencv"]);
const DEPLOYMENT = [
  { name: "replicas", label: "Replicas", kind: "int", min: 1, max: 64,
    help: "empty: one service; N: a deployment of N instances behind one endpoint, spread over nodes" },
];

const REQUIREMENTS = [
  { name: "cpu", label: "CPU (cores)", kind: "number", min: 0, value: "0.5" },
  { name: "memory", label: "Memory (MiB)", kind: "int", min: 0, value: "256", scale: 2 ** 20 },
  { name: "gpu", label: "GPU (devices)", kind: "int", min: 0, value: "0" },
  { name: "storage", label: "Storage (MiB)", kind: "int", min: 0, value: "0", scale: 2 ** 20 },
];

function input(field, prefix) {
  const id = `${prefix}-${field.name}`;
  const common = { id, name: field.name, "aria-describedby": `${id}-error` };
  if (field.kind === "select") return el("select", common, field.options.map((option) => el("option", { value: option }, option)));
  if (["lines", "pairs", "ports", "volumes"].includes(field.kind)) return el("textarea", { ...common, rows: 2 });
  if (field.kind === "file") return el("input", { ...common, type: "file" });
  if (field.kind === "directory") return el("input", { ...common, type: "file", webkitdirectory: true, multiple: true });
  return el("input", { ...common, type: "text", inputmode: field.kind === "text" ? null : "decimal",
    placeholder: field.placeholder || null, value: field.value || null });
}

function fieldRow(field, prefix) {
  const id = `${prefix}-${field.name}`;
  return el("div", { class: "field", dataset: { field: field.name } },
    el("label", { for: id }, field.label, field.required ? el("span", { class: "required", title: "required" }, " *") : null),
    input(field, prefix),
    field.help ? el("small", { class: "help" }, field.help) : null,
    el("small", { class: "field-error", id: `${id}-error`, role: "alert" }));
}

// The form's fields for one workload type: its own, then name and requirements (data has no requirements:
// an upload reserves its own size).
export function renderFields(type) {
  const own = TYPES[type].map((field) => fieldRow(field, "f"));
  const name = fieldRow(NAME, "f");
  if (type === "data") return [...own, name];
  const deployment = REPLICABLE.has(type) ? DEPLOYMENT.map((field) => fieldRow(field, "d")) : [];
  return [...own, ...deployment, name,
    el("fieldset", { class: "requirements" }, el("legend", {}, "Requirements"),
      REQUIREMENTS.map((field) => fieldRow(field, "r")))];
}

function parseNumber(field, raw) {
  const value = Number(raw);
  if (raw === "" || !Number.isFinite(value)) throw new Error("expected a number");
  if (field.kind === "int" && !Number.isInteger(value)) throw new Error("expected a whole number");
  if (field.min !== undefined && value < field.min) throw new Error(`must be at least ${field.min}`);
  if (field.max !== undefined && value > field.max) throw new Error(`must be at most ${field.max}`);
  return field.scale ? Math.round(value * field.scale) : value;
}

function lines(raw) { return raw.split("\n").map((line) => line.trim()).filter(Boolean); }

function parsePairs(raw) {
  const pairs = {};
  for (const line of lines(raw)) {
    const at = line.indexOf("=");
    const name = at < 0 ? line : line.slice(0, at);
    if (at < 0 || !ENV_NAME.test(name)) throw new Error(`"${line}": expected NAME=value`);
    pairs[name] = line.slice(at + 1);
  }
  return pairs;
}

function parsePorts(raw) {
  const ports = {};
  for (const line of lines(raw)) {
    const [inside, host] = line.split("=");
    if (!/^\d+(\/(tcp|udp))?$/.test(inside)) throw new Error(`"${line}": expected 8080/tcp=18080`);
    const key = inside.includes("/") ? inside : `${inside}/tcp`;
    ports[key] = host === undefined || host === "" ? null : parseNumber({ kind: "int", min: 1, max: 65535 }, host);
  }
  return ports;
}

function parseVolumes(raw) {
  const volumes = {};
  for (const line of lines(raw)) {
    const [host, bind, mode = "rw"] = line.split(":");
    if (!host.startsWith("/") || !bind || !bind.startsWith("/") || !["ro", "rw"].includes(mode)) {
      throw new Error(`"${line}": expected /host/path:/in/container[:ro]`);
    }
    volumes[host] = { bind, mode };
  }
  return volumes;
}

// The value of one field, or undefined when it is empty and optional; throws Error(message) when invalid.
function valueOf(field, control) {
  if (field.kind === "file" || field.kind === "directory") return control.files;
  const raw = control.value.trim();
  if (raw === "") {
    if (field.required) throw new Error("required");
    return undefined;
  }
  if (field.pattern && !field.pattern.test(raw)) throw new Error(field.patternHelp);
  switch (field.kind) {
    case "number": case "int": return parseNumber(field, raw);
    case "lines": return lines(raw);
    case "pairs": return parsePairs(raw);
    case "ports": return parsePorts(raw);
    case "volumes": return parseVolumes(raw);
    default: return raw;
  }
}

function collect(fields, form, prefix, errors) {
  const values = {};
  for (const field of fields) {
    try {
      const value = valueOf(field, form.querySelector(`#${prefix}-${field.name}`));
      if (value !== undefined) values[field.name] = value;
    } catch (error) {
      errors[field.name] = error.message;
    }
  }
  return values;
}

// Check the form; returns {errors} (field name → message) or, when all is well, what to send:
// {json} for a workload, {upload: FormData} for data.
export function readForm(type, form) {
  const errors = {};
  const own = collect(TYPES[type], form, "f", errors);
  const { name } = collect([NAME], form, "f", errors);
  if (type === "data") {
    const chosen = [own.file, own.directory].filter((list) => list && list.length);
    if (chosen.length !== 1) errors.file = chosen.length ? "choose a file or a directory, not both" : "choose a file or a directory";
    if (Object.keys(errors).length) return { errors };
    const upload = new FormData();
    upload.append("type", "data");
    if (name) upload.append("name", name);
    for (const file of chosen[0]) upload.append("file", file, file.webkitRelativePath || file.name);
    return { upload };
  }
  const requirements = collect(REQUIREMENTS, form, "r", errors);
  const deployment = REPLICABLE.has(type) ? collect(DEPLOYMENT, form, "d", errors) : {};
  if (Object.keys(errors).length) return { errors };
  return { json: { type, ...(name ? { name } : {}), config: own, requirements, ...deployment } };
}

export function showErrors(form, errors) {
  for (const row of form.querySelectorAll(".field[data-field]")) {
    const message = errors[row.dataset.field] || "";
    row.classList.toggle("invalid", Boolean(message));
    row.querySelector(".field-error").textContent = message;
  }
}
