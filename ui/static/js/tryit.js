// The try-it panel: send an image to a running mlmodel / opencv service (through the node, which relays
// it) and draw the detections as labelled boxes over the image.

import { el, replaceChildren } from "./dom.js";
import { request } from "./api.js";

const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];

// The running model services, as the node listed them.
export function renderServiceOptions(select, services) {
  const chosen = select.value;
  replaceChildren(select, services.length ? services.map((record) => el("option",
    { value: record.id, selected: record.id === chosen }, `${record.name} (${record.type})`))
    : el("option", { value: "" }, "no running model service"));
}

function loadImage(file) {
  const url = URL.createObjectURL(file);
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`${file.name} is not an image the browser can show`));
    image.src = url;
  }).finally(() => URL.revokeObjectURL(url));  // decoded (or refused): the blob URL is no longer needed
}

function draw(canvas, image, detections) {
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const scale = Math.max(1, image.naturalWidth / 640);
  context.lineWidth = 2 * scale;
  context.font = `${Math.round(13 * scale)}px sans-serif`;
  detections.forEach((detection, index) => {
    const [x1, y1, x2, y2] = detection.bbox;
    const colour = COLOURS[index % COLOURS.length];
    const label = `${detection.class} ${detection.confidence.toFixed(2)}`;
    context.strokeStyle = colour;
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const height = 16 * scale;
    const width = context.measureText(label).width + 6 * scale;
    const top = y1 > height ? y1 - height : y1;
    context.fillStyle = colour;
    context.fillRect(x1, top, width, height);
    context.fillStyle = "#fff";
    context.fillText(label, x1 + 3 * scale, top + height - 4 * scale);
  });
}

// Run one prediction; returns the service's answer after drawing it.
export async function predict({ workloadId, file, confidence, canvas, list }) {
  const image = await loadImage(file);
  const answer = await request("POST", `/api/workloads/${encodeURIComponent(workloadId)}/predict?confidence=${confidence}`,
    { body: file, contentType: file.type || "application/octet-stream" });
  draw(canvas, image, answer.detections);
  canvas.dataset.count = String(answer.count);
  replaceChildren(list, answer.detections.length ? answer.detections.map((detection) => el("li", {},
    `${detection.class} ${detection.confidence.toFixed(3)} [${detection.bbox.map((v) => Math.round(v)).join(", ")}]`))
    : el("li", { class: "muted" }, "nothing detected at this confidence"));
  return answer;
}
