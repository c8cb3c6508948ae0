/**
 * Job ids: derived from bucket, object name and generation, so every delivery of one object
 * generation maps to one id. Valid as a Firestore document id and as a Vertex label value
 * (≤ 63 characters of lowercase letters, digits, `-`, `_`), readable, and collision-safe: a hash
 * of the exact triple follows a readable slug of the file name.
 */
import { createHash } from 'node:crypto';

/** Longest job id (a Vertex label value's limit). */
export const MAX_JOB_ID_LENGTH = 63;
const HASH_LENGTH = 16;
const SLUG_LENGTH = MAX_JOB_ID_LENGTH - HASH_LENGTH - 1;

/** The readable part: the file's base name without `.jsonl`, ASCII-folded, lowercase. */
export function slugOf(objectName: string): string {
  const base = objectName.split('/').pop() ?? '';
  const slug = base
    .replace(/\.jsonl$/i, '')
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, SLUG_LENGTH)
    .replace(/^-+|-+$/g, '');
  if (slug === '') return 'input';
  return /^[a-z]/.test(slug) ? slug : `f-${slug}`.slice(0, SLUG_LENGTH).replace(/-+$/, '');
}

/**
 * The job id of one object generation: `<slug>-<16 hex of sha256(bucket, name, generation)>`.
 * Deterministic; at most 63 characters matching `^[a-z][a-z0-9-]*$`.
 */
export function deriveJobId(bucket: string, objectName: string, generation: string): string {
  const hash = createHash('sha256')
    .update(`${bucket}\u0000${objectName}\u0000${generation}`, 'utf8')
    .digest('hex')
    .slice(0, HASH_LENGTH);
  return `${slugOf(objectName)}-${hash}`;
}
