/**
 * Fault injection for the Vertex emulator: failed requests, lost create answers, forced job
 * outcomes, latency and refused `list` calls. Faults are injected in process
 * (`VertexEmulator.inject`) and cleared by `reset()`.
 */
import type { CreateRequest, JobFilter } from './request.js';

/** The request kinds that are counted and can be faulted. */
export type VertexOp = 'create' | 'get' | 'list' | 'cancel';

/** A forced outcome of the next matching job(s). */
export interface OutcomeFault {
  /**
   * FAILED: error 13 INTERNAL, no output; EXPIRED: straight from PENDING, no error;
   * PARTIALLY_SUCCEEDED: the last successful row is turned into a failed one; CANCELLED: runs,
   * then CANCELLING → CANCELLED without output.
   */
  outcome: 'FAILED' | 'EXPIRED' | 'PARTIALLY_SUCCEEDED' | 'CANCELLED';
  /** `displayName` equal, or any label value equal to `labelValue`; absent: any job. */
  match?: { displayName?: string; labelValue?: string };
  times?: number;
  /** The error message of a forced FAILED job. */
  message?: string;
}

/**
 * A fault to inject.
 * - `{op, status}`: the next `times` (default 1) requests of that kind answer `status` with an
 *   error body and have no other effect.
 * - `{op: 'create', loseAnswer: true}`: the next `times` creates that pass validation DO create
 *   the job, but the client gets a 503 UNAVAILABLE instead.
 * - `{outcome, match}`: see {@link OutcomeFault}.
 * - `{latencyMs}`: added to every API request until reset (`0` removes it).
 * - `{refuseList: true}`: every `list` answers 400 INVALID_ARGUMENT (with `message`, or the
 *   service's generic one) until reset or `{refuseList: false}`; with `maxOrTerms`, only lists
 *   whose filter ORs more terms than that. The service documents no such limit: this lets a test
 *   check that callers do not depend on `list` alone.
 */
export type VertexFault =
  | { op: VertexOp; status: 400 | 403 | 404 | 429 | 500 | 503; times?: number; message?: string }
  | { op: 'create'; loseAnswer: true; times?: number }
  | OutcomeFault
  | { latencyMs: number }
  | { refuseList: boolean; maxOrTerms?: number; message?: string };

type RequestFault = Extract<VertexFault, { op: VertexOp }>;

/** The faults in force. */
export class Faults {
  private requests: { fault: RequestFault; left: number }[] = [];
  private outcomes: { fault: OutcomeFault; left: number }[] = [];
  private refusal: { maxOrTerms?: number; message?: string } | undefined;
  latencyMs = 0;

  add(fault: VertexFault): void {
    const times = 'times' in fault ? (fault.times ?? 1) : 1;
    if (!Number.isInteger(times) || times < 1) throw new Error(`times must be >= 1: ${times}`);
    if ('latencyMs' in fault) this.latencyMs = fault.latencyMs;
    else if ('refuseList' in fault) this.refusal = fault.refuseList ? fault : undefined;
    else if ('outcome' in fault) this.outcomes.push({ fault, left: times });
    else this.requests.push({ fault, left: times });
  }

  clear(): void {
    this.requests = [];
    this.outcomes = [];
    this.refusal = undefined;
    this.latencyMs = 0;
  }

  /** The first fault queued for `op`. A status fault is used up now, a lost answer by {@link useUp}. */
  take(op: VertexOp): RequestFault | undefined {
    const slot = this.requests.find((f) => f.fault.op === op);
    if (slot && 'status' in slot.fault) this.useUp(slot.fault);
    return slot?.fault;
  }

  useUp(fault: RequestFault): void {
    const slot = this.requests.find((f) => f.fault === fault);
    if (slot) slot.left -= 1;
    this.requests = this.requests.filter((f) => f.left > 0);
  }

  /** The forced outcome of a job just created, if one matches (used up). */
  outcomeFor(request: CreateRequest): OutcomeFault | undefined {
    const values = Object.values(request.labels);
    const slot = this.outcomes.find(
      ({ fault: { match } }) =>
        (match?.displayName === undefined || match.displayName === request.displayName) &&
        (match?.labelValue === undefined || values.includes(match.labelValue)),
    );
    if (!slot) return undefined;
    slot.left -= 1;
    this.outcomes = this.outcomes.filter((o) => o.left > 0);
    return slot.fault;
  }

  /** The message to refuse a list with this (parsed) filter, or undefined to serve it. */
  listRefusal(filter: JobFilter): string | undefined {
    if (!this.refusal) return undefined;
    const orTerms = filter.reduce((n, group) => n + group.length - 1, 1);
    const max = this.refusal.maxOrTerms;
    if (max !== undefined && orTerms <= max) return undefined;
    return this.refusal.message ?? 'Request contains an invalid argument.';
  }
}
