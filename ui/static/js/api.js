// The node's REST API as the console uses it: JSON in and out, the bearer token kept for the browser
// session (asked for once, on the first 401), and uploads with progress.

const TOKEN_KEY = "cnet-token";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

let askToken = async () => null;  // set by the page: shows the token dialog, resolves to the entered token

export function onTokenNeeded(prompt) { askToken = prompt; }
export function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  return token() ? { ...extra, Authorization: `Bearer ${token()}` } : extra;
}

async function decode(response) {
  const text = await response.text();
  try { return text ? JSON.parse(text) : null; } catch { return { error: "bad_response", message: text.slice(0, 200) }; }
}

// One request; on 401 ask for the token once and retry with it.
export async function request(method, path, { json, body, contentType } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const init = { method, headers: headers(contentType ? { "Content-Type": contentType } : {}) };
    if (json !== undefined) { init.body = JSON.stringify(json); init.headers["Content-Type"] = "application/json"; }
    else if (body !== undefined) init.body = body;
    const response = await fetch(path, init);
    const answer = await decode(response);
    if (response.status === 401 && attempt === 0) {
      const entered = await askToken(answer && answer.message);
      if (entered) { setToken(entered); continue; }
    }
    if (!response.ok) throw new ApiError(response.status, answer);
    return answer;
  }
}

export const get = (path) => request("GET", path);

// A multipart upload through XMLHttpRequest, the one browser API that reports upload progress.
export function upload(path, formData, onProgress) {
  const send = () => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    if (token()) xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
    xhr.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    xhr.onload = () => {
      let answer = null;
      try { answer = JSON.parse(xhr.responseText); } catch { answer = { message: xhr.responseText.slice(0, 200) }; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(answer); else reject(new ApiError(xhr.status, answer));
    };
    xhr.onerror = () => reject(new ApiError(0, { message: "the upload was interrupted (network error)" }));
    xhr.send(formData);
  });
  return send().catch(async (error) => {
    if (error.status !== 401) throw error;
    const entered = await askToken(error.message);
    if (!entered) throw error;
    setToken(entered);
    return send();
  });
}
