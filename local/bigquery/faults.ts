/**
 * Fault injection for the BigQuery emulator, in process (`BigQueryEmulator.inject`), cleared by
 * `reset()`: failed requests, requests that never answer, and latency. A fault hits the product
 * and the Vertex emulator alike, as an outage of the service would.
 */

/** The request kinds that are counted and can be faulted, named after the API's methods. */
export type BigQueryOp =
  | 'datasets.insert'
  | 'datasets.get'
  | 'tables.insert'
  | 'tables.get'
  | 'tabledata.list'
  | 'tabledata.insertAll';

export const BIGQUERY_OPS: readonly BigQueryOp[] = [
  'datasets.insert',
  'datasets.get',
  'tables.insert',
  'tables.get',
  'tabledata.list',
  'tabledata.insertAll',
];

/**
 * A fault to inject.
 * - `{status}`: the next `times` (default 1) requests of kind `op` (any kind when absent) answer
 *   `status` with an error body (`message` and `reason`, or the service's generic ones: 403
 *   `accessDenied`, 500 and 503 `backendError`, …) and have no other effect.
 * - `{hang: true}`: the next `times` requests of kind `op` (any when absent) never answer; the
 *   connection drops when the emulator closes. For client timeouts.
 * - `{latencyMs}`: added to every API request until reset (`0` removes it).
 */
export type BigQueryFault =
  | {
      op?: BigQueryOp;
      status: 400 | 403 | 404 | 409 | 429 | 500 | 503;
      times?: number;
      message?: string;
      reason?: string;
    }
  | { op?: BigQueryOp; hang: true; times?: number }
  | { latencyMs: number };

type RequestFault = Exclude<BigQueryFault, { latencyMs: number }>;

/** The faults in force. */
export class Faults {
  private requests: { fault: RequestFault; left: number }[] = [];
  latencyMs = 0;

  add(fault: BigQueryFault): void {
    if ('latencyMs' in fault) this.latencyMs = fault.latencyMs;
    else this.requests.push({ fault, left: fault.times ?? 1 });
  }

  clear(): void {
    this.requests = [];
    this.latencyMs = 0;
  }

  /** The fault queued for the next `op`, if any (used up). */
  take(op: BigQueryOp): RequestFault | undefined {
    const slot = this.requests.find((f) => (f.fault.op ?? op) === op);
    if (slot) slot.left -= 1;
    this.requests = this.requests.filter((f) => f.left > 0);
    return slot?.fault;
  }
}
