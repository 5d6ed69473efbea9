// fetch() for the Frontdesk API: same-origin cookie, CSRF header on writes, JSON in and out.
// Errors are RFC 9457 problem documents; they are thrown as ApiError with the server's detail.
import { boot, t } from "./boot.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** The human part of an error: the problem's detail, or a plain sentence when the server could not be reached. */
export function problemDetail(error) {
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return t("The server could not be reached.");
  return String(error && error.message ? error.message : error);
}

/**
 * api("GET", "/conversations?status=open") → parsed JSON (or null for 204).
 * `path` is relative to /api/v1 unless it starts with "/api/". `body` may be an object (sent as
 * JSON) or a FormData (sent as multipart).
 */
export async function api(method, path, body = undefined, { signal } = {}) {
  const url = path.startsWith("/api/") ? path : `/api/v1${path}`;
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = boot.csrf;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(url, { method, headers, body: payload, credentials: "same-origin", signal });
  if (response.status === 401 && !url.endsWith("/auth/logout")) {
    window.location.assign(`/?next=${encodeURIComponent(window.location.pathname + window.location.hash)}`);
    throw new ApiError(401, { detail: "signed out" });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof data === "object" ? data : { detail: data });
  return data;
}

/** Build a query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    q.set(key, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
