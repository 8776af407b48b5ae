// The node's REST API as the console uses it: JSON in and out, the bearer token kept for the browser
// session (asked for once, on the first 401: reads of workloads and data need it too), and uploads with
// progress.

const TOKEN_KEY = "cnet-token";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

let askToken = async () => null;  // set by the page: shows the token dialog, resolves to the entered token
let asking = null;  // the one prompt that every request refused at the same time waits for

export function onTokenNeeded(prompt) { askToken = prompt; }
export function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  return token() ? { ...extra, Authorization: `Bearer ${token()}` } : extra;
}

function parseAnswer(text) {
  try { return text ? JSON.parse(text) : null; } catch { return { error: "bad_response", message: text.slice(0, 200) }; }
}

// Run send() (which throws ApiError); on a 401 ask for the token once and send again with it.
async function withToken(send) {
  try {
    return await send();
  } catch (error) {
    if (error.status !== 401) throw error;
    if (!asking) asking = askToken(error.message).finally(() => { asking = null; });
    const entered = await asking;
    if (!entered) throw error;
    setToken(entered);
    return send();
  }
}

export function request(method, path, { json, body, contentType } = {}) {
  return withToken(async () => {
    const init = { method, headers: headers(contentType ? { "Content-Type": contentType } : {}) };
    if (json !== undefined) { init.body = JSON.stringify(json); init.headers["Content-Type"] = "application/json"; }
    else if (body !== undefined) init.body = body;
    const response = await fetch(path, init);
    const answer = parseAnswer(await response.text());
    if (!response.ok) throw new ApiError(response.status, answer);
    return answer;
  });
}

export const get = (path) => request("GET", path);

// An image the API serves (a stream's snapshot), as a blob: an <img> cannot send the token itself.
export function getImage(path) {
  return withToken(async () => {
    const response = await fetch(path, { headers: headers() });
    if (!response.ok) throw new ApiError(response.status, parseAnswer(await response.text()));
    return response.blob();
  });
}

// A multipart upload through XMLHttpRequest, the one browser API that reports upload progress.
export function upload(path, formData, onProgress) {
  return withToken(() => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    xhr.onload = () => {
      const answer = parseAnswer(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300) resolve(answer); else reject(new ApiError(xhr.status, answer));
    };
    xhr.onerror = () => reject(new ApiError(0, { message: "the upload was interrupted (network error)" }));
    xhr.send(formData);
  }));
}
