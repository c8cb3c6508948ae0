/**
 * Cloud Storage finalize CloudEvents: parsing (int64 fields arrive as strings or numbers; binary
 * and structured content modes) and the pure decision whether an object is an input.
 */
import type { Config } from '../config.js';
import { isManifestName } from './manifest.js';

/** The event type of a finalized object. */
export const FINALIZED_EVENT_TYPE = 'google.cloud.storage.object.v1.finalized';

/** The parts of a CloudEvent we read (the functions framework's `CloudEvent<unknown>`). */
export interface IncomingCloudEvent {
  id?: string;
  type?: string;
  source?: string;
  subject?: string;
  time?: string;
  data?: unknown;
}

/** A finalized object, normalised. */
export interface FinalizedObject {
  /** The CloudEvent id (the same on redelivery). */
  eventId: string;
  /** When the event happened (RFC 3339), if known. */
  eventTime: string | undefined;
  bucket: string;
  name: string;
  /** int64 as a decimal string. */
  generation: string;
  size: number | undefined;
  contentEncoding: string | undefined;
  /** Custom metadata (`x-goog-meta-*`). */
  metadata: Readonly<Record<string, string>>;
}

/** Why an incoming request is not a usable finalize event. */
export type NotAnEvent = { problem: string };

const INT64 = /^\d{1,20}$/;

function int64String(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  if (typeof value === 'string' && INT64.test(value)) return value.replace(/^0+(?=\d)/, '');
  return undefined;
}

/** Parses a CloudEvent into a {@link FinalizedObject}, or says why it is not one. */
export function parseFinalizeEvent(event: IncomingCloudEvent): FinalizedObject | NotAnEvent {
  if (event.type !== FINALIZED_EVENT_TYPE) {
    return { problem: `event type is ${event.type ? JSON.stringify(event.type) : 'missing'}` };
  }
  let data = event.data;
  if (typeof data === 'string' || Buffer.isBuffer(data)) {
    try {
      data = JSON.parse(data.toString()) as unknown;
    } catch {
      return { problem: 'event data is not JSON' };
    }
  }
  if (typeof data !== 'object' || data === null) return { problem: 'event data is missing' };
  const d = data as Record<string, unknown>;
  const bucket = typeof d.bucket === 'string' && d.bucket !== '' ? d.bucket : undefined;
  const name = typeof d.name === 'string' && d.name !== '' ? d.name : undefined;
  const generation = int64String(d.generation);
  if (!bucket || !name || !generation) {
    return { problem: 'event data lacks bucket, name or generation' };
  }
  const size = int64String(d.size);
  const metadata: Record<string, string> = {};
  if (typeof d.metadata === 'object' && d.metadata !== null) {
    for (const [k, v] of Object.entries(d.metadata as Record<string, unknown>)) {
      if (typeof v === 'string') metadata[k] = v;
    }
  }
  const time =
    event.time ??
    (typeof d.updated === 'string' ? d.updated : undefined) ??
    (typeof d.timeCreated === 'string' ? d.timeCreated : undefined);
  return {
    eventId: event.id ?? `${bucket}/${name}/${generation}`,
    eventTime: time,
    bucket,
    name,
    generation,
    size: size === undefined ? undefined : Number(size),
    contentEncoding: typeof d.contentEncoding === 'string' ? d.contentEncoding : undefined,
    metadata,
  };
}

/** Why an object is not an input (one reason each, for the debug log). */
export type IgnoreReason = 'not-jsonl' | 'outside-input-prefix' | 'output-location';

/** Decides whether an object is an input (README "Inputs"); undefined means it is. */
export function ignoreReason(
  object: Pick<FinalizedObject, 'bucket' | 'name'>,
  config: Pick<Config, 'INPUT_PREFIX' | 'OUTPUT_URI_PREFIX'>,
): IgnoreReason | undefined {
  if (!object.name.toLowerCase().endsWith('.jsonl') && !isManifestName(object.name)) {
    return 'not-jsonl';
  }
  if (!object.name.startsWith(config.INPUT_PREFIX)) return 'outside-input-prefix';
  const { bucket, prefix } = splitGcsUri(config.OUTPUT_URI_PREFIX);
  if (object.bucket === bucket && (prefix === '' || object.name.startsWith(`${prefix}/`))) {
    return 'output-location';
  }
  return undefined;
}

/** `gs://bucket/a/b` → `{bucket: 'bucket', prefix: 'a/b'}` (no trailing slash). */
export function splitGcsUri(uri: string): { bucket: string; prefix: string } {
  const rest = uri.replace(/^gs:\/\//, '');
  const slash = rest.indexOf('/');
  if (slash < 0) return { bucket: rest, prefix: '' };
  return { bucket: rest.slice(0, slash), prefix: rest.slice(slash + 1).replace(/\/+$/, '') };
}

/** Seconds between the event's time and now; undefined when the event carries no usable time. */
export function eventAgeSeconds(object: FinalizedObject, now: Date): number | undefined {
  if (!object.eventTime) return undefined;
  const t = Date.parse(object.eventTime);
  return Number.isNaN(t) ? undefined : (now.getTime() - t) / 1000;
}
