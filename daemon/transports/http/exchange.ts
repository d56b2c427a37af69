// One HTTP request and its answer, as the API handlers see it, and the bridge from a generation on
// the shared router to an HTTP response: a session per request, closed when the answer ends, so
// that a client that goes away cancels its generation and frees its cells like any other.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../log.js";
import type { ErrorCode, GenerateRequest, GenerateResult } from "../../serving/protocol.js";
import type { Router } from "../../serving/router.js";
import type { ModelCard } from "./model-card.js";
import type { PullService } from "./pull.js";

/** What the handlers share: the router, the model's description, the log. */
export interface HttpServices {
  router: Router;
  card: ModelCard;
  version: string;
  log: Logger;
  /** Downloads a catalog model (POST /api/pull); absent: pulling is not offered. */
  pull?: PullService;
  /** Once per daemon: a client asked for a larger context than the plan gives. */
  noteContextClamp(asked: number): void;
}

export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  /** The path, with a token prefix taken off. */
  path: string;
  query: URLSearchParams;
  /** The parsed JSON body (POST), else undefined. */
  body: unknown;
  /** "http#12", for the log. */
  label: string;
  services: HttpServices;
}

/** A path segment decoded, or as it is when its %-escapes are broken. */
export function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Starts a streamed answer: headers now, then lines or events as tokens arrive. */
export function startStream(res: ServerResponse, contentType: string): void {
  if (res.headersSent) return;
  res.writeHead(200, { "Content-Type": contentType, "Cache-Control": "no-cache", "X-Accel-Buffering": "no" });
  res.socket?.setNoDelay(true); // a token is a few bytes: do not wait for Nagle
}

/** The HTTP status of a protocol error (busy is the API's own choice: 503 or 429). */
export function statusOf(code: ErrorCode, busyStatus: number): number {
  switch (code) {
    case "bad_request":
    case "too_long":
      return 400;
    case "busy":
      return busyStatus;
    case "shutting_down":
      return 503;
    case "timeout":
      return 504;
    case "cancelled":
      return 499; // the client asked for it; nobody is left to read this
    case "internal":
      return 500;
  }
}

export interface GenerationEvents {
  /** The request is queued (the scheduler took it): a streamed answer sends its headers. */
  accepted(): void;
  /** A piece of the answer, or of the reasoning a thinking model writes before it. */
  delta(text: string, thinking?: string): void;
  done(result: GenerateResult): void;
  failed(code: ErrorCode, message: string): void;
}

/**
 * Runs one generation for this request on the shared router. Refusals that come at once (busy,
 * too long, shutting down) arrive before accepted(); the answer's headers can still carry them.
 */
export function runGeneration(x: Exchange, request: GenerateRequest, on: GenerationEvents): void {
  const { res } = x;
  let settled = false;
  const session = x.services.router.openSession(
    {
      send: (m) => {
        if ("delta" in m) return on.delta(m.delta, m.thinking);
        if (!("status" in m)) return;
        settled = true;
        try {
          if (m.status === "ok") on.done(m.data as GenerateResult);
          else on.failed(m.error.code, m.error.message);
        } finally {
          session.close();
        }
      },
      congested: () => res.writableNeedDrain,
      onceDrained: (callback) => res.once("drain", callback),
    },
    x.label,
  );
  // Gone before the answer ended: the session's close cancels the generation and frees its cells.
  res.once("close", () => {
    if (settled) return;
    x.services.log.debug(`${x.label}: the client went away; cancelling its generation`);
    session.close();
  });
  session.submit(request);
  if (!settled) on.accepted();
}
