// The CallContext handed to KV and Cluster handlers, for unary calls and Batch calls alike.
import type { Metadata } from "@grpc/grpc-js";
import { RpcError } from "./errors.js";
import type { CallContext } from "./handlers.js";

/** The abort reason when the client cancels a call or goes away. */
export const CALL_CANCELLED = new RpcError("DEADLINE_EXCEEDED", "the call was cancelled");

/**
 * A call's context. Its abort signal, and the timer behind the deadline, are made only when
 * a handler asks for the signal: rockraft's runtime keeps its own deadlines and never does,
 * so a call costs no timer, controller or event of its own. It is cancelled when the client
 * cancels: through `cancelled` (a Batch stream's signal, shared by its calls) or `cancel()`
 * (a unary call's own "cancelled" event).
 */
export class LazyCallContext implements CallContext {
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private onCancel: (() => void) | undefined;
  private cancelReason: unknown;
  private answered = false;

  private certificate: { name: string | undefined } | undefined;

  constructor(
    /** The call's deadline (ms since the epoch), or Infinity. */
    readonly deadline: number,
    private readonly cancelled?: AbortSignal,
    /** The caller's token, if it sent one. */
    readonly token?: string,
    /** The call (or Batch stream) its certificate is read from, only when a handler asks. */
    private readonly call?: CertificateSource,
  ) {}

  get certificateName(): string | undefined {
    this.certificate ??= { name: this.call === undefined ? undefined : certificateName(this.call) };
    return this.certificate.name;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = new AbortController();
      this.controller = controller;
      const cancelled = this.cancelled;
      if (this.cancelReason !== undefined) controller.abort(this.cancelReason);
      else if (cancelled?.aborted === true) controller.abort(cancelled.reason);
      else if (cancelled !== undefined) {
        this.onCancel = () => controller.abort(cancelled.reason);
        cancelled.addEventListener("abort", this.onCancel);
      }
      if (Number.isFinite(this.deadline)) {
        this.timer = setTimeout(
          () => controller.abort(new RpcError("DEADLINE_EXCEEDED", "the call's deadline passed")),
          Math.max(0, this.deadline - Date.now()),
        );
      }
    }
    return this.controller.signal;
  }

  /** The client cancelled the call (or went away) before it was answered. */
  cancel(reason: unknown): void {
    if (this.answered || this.cancelReason !== undefined) return;
    this.cancelReason = reason;
    this.controller?.abort(reason);
  }

  /** The call is answered: stops the deadline timer and the cancel listener, if made. */
  done(): void {
    this.answered = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onCancel !== undefined) this.cancelled?.removeEventListener("abort", this.onCancel);
  }
}

/** The bearer token in a call's metadata (`authorization: Bearer <token>`), if any. */
export function bearerToken(metadata: Metadata): string | undefined {
  const value = metadata.get("authorization")[0];
  if (typeof value !== "string") return undefined;
  return value.startsWith("Bearer ") ? value.slice(7) : value;
}

/** A call, or Batch stream, whose TLS client certificate can be read. */
export interface CertificateSource {
  getAuthContext?(): { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } | null;
}

/** The common name of a call's verified client certificate (mutual TLS), if it has one. */
export function certificateName(call: CertificateSource): string | undefined {
  const name = call.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
  // A certificate with several common names names no user.
  return typeof name === "string" && name !== "" ? name : undefined;
}
