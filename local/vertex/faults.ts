/**
 * Fault injection for the Vertex emulator, in process (`VertexEmulator.inject`), cleared by
 * `reset()`: failed requests, latency, and refused `list` calls.
 */
import type { JobFilter } from './request.js';

/** The request kinds that are counted and can be faulted. */
export type VertexOp = 'create' | 'get' | 'list' | 'cancel';

/**
 * A fault to inject.
 * - `{op, status}`: the next `times` (default 1) requests of that kind answer `status` with an
 *   error body (`message`, or the service's generic one) and have no other effect.
 * - `{latencyMs}`: added to every API request until reset (`0` removes it).
 * - `{refuseList: true}`: every `list` answers 400 INVALID_ARGUMENT until reset or
 *   `{refuseList: false}`; with `maxOrTerms`, only the lists whose filter ORs more terms than
 *   that. The service documents no such limit: this lets a test check that callers do not depend
 *   on `list` alone.
 */
export type VertexFault =
  | { op: VertexOp; status: 400 | 403 | 404 | 429 | 500 | 503; times?: number; message?: string }
  | { latencyMs: number }
  | { refuseList: boolean; maxOrTerms?: number; message?: string };

type RequestFault = Extract<VertexFault, { op: VertexOp }>;

/** The faults in force. */
export class Faults {
  private requests: { fault: RequestFault; left: number }[] = [];
  private refusal: { maxOrTerms?: number; message?: string } | undefined;
  latencyMs = 0;

  add(fault: VertexFault): void {
    if ('latencyMs' in fault) this.latencyMs = fault.latencyMs;
    else if ('refuseList' in fault) this.refusal = fault.refuseList ? fault : undefined;
    else this.requests.push({ fault, left: fault.times ?? 1 });
  }

  clear(): void {
    this.requests = [];
    this.refusal = undefined;
    this.latencyMs = 0;
  }

  /** The fault queued for the next `op`, if any (used up). */
  take(op: VertexOp): RequestFault | undefined {
    const slot = this.requests.find((f) => f.fault.op === op);
    if (slot) slot.left -= 1;
    this.requests = this.requests.filter((f) => f.left > 0);
    return slot?.fault;
  }

  /** Whether a list with this (parsed) filter is refused, and with which message. */
  listRefusal(filter: JobFilter): { message?: string } | undefined {
    const orTerms = filter.reduce((n, group) => n + group.length - 1, 1);
    return orTerms > (this.refusal?.maxOrTerms ?? 0) ? this.refusal : undefined;
  }
}
