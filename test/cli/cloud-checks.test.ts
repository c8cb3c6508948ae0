/**
 * The cloud-only checks of `doctor` over REST, against a local server that answers like the Google
 * APIs (paths, query strings, bodies and error shapes of Service Usage, Resource Manager, Cloud
 * Storage, Pub/Sub, Firestore Admin and OpenID userinfo), with a static token.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CloudCheckError,
  createCloudChecks,
  type CheckEndpoints,
  type CloudChecks,
} from '../../shared/adapters/cloud-checks.js';

let server: Server;
let checks: CloudChecks;
/** The checks of a project whose caller may not read its services. */
let deniedChecks: CloudChecks;
const seen: { method: string; url: string; body: string; auth: string }[] = [];

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The answers, by method and path (query strings checked by the tests through `seen`). */
function answer(method: string, path: string, text: string): [number, unknown] {
  const granted = (asked: string[], keep: (p: string) => boolean) => ({
    permissions: asked.filter(keep),
  });
  if (path === '/v1/projects/demo-p/services:batchGet') {
    return [
      200,
      {
        services: [
          { name: 'projects/123/services/aiplatform.googleapis.com', state: 'ENABLED' },
          { name: 'projects/123/services/pubsub.googleapis.com', state: 'DISABLED' },
        ],
      },
    ];
  }
  if (method === 'POST' && path === '/v1/projects/demo-p:testIamPermissions') {
    const asked = (JSON.parse(text) as { permissions: string[] }).permissions;
    return [200, granted(asked, (p) => !p.endsWith('.cancel'))];
  }
  if (method === 'POST' && path === '/v1/projects/demo-p/topics/events:testIamPermissions') {
    return [200, {}];
  }
  if (path === '/storage/v1/b/out/iam/testPermissions')
    return [200, { permissions: ['storage.objects.get'] }];
  if (path === '/storage/v1/b/out') return [200, { name: 'out' }];
  if (path === '/storage/v1/b/gone') return [404, { error: { code: 404, message: 'Not Found' } }];
  if (path === '/v1/projects/demo-p/topics/events')
    return [200, { name: 'projects/demo-p/topics/events' }];
  if (path === '/v1/projects/demo-p/topics/missing') {
    return [404, { error: { code: 404, message: 'Resource not found', status: 'NOT_FOUND' } }];
  }
  if (path === '/v1/projects/demo-p/databases/(default)') {
    return [
      200,
      { name: 'projects/demo-p/databases/(default)', type: 'FIRESTORE_NATIVE', locationId: 'nam5' },
    ];
  }
  if (path === '/v1/projects/demo-p/databases/(default)/collectionGroups/batchJobs/indexes') {
    return [
      200,
      text === 'page2'
        ? {}
        : {
            indexes: [
              {
                queryScope: 'COLLECTION',
                state: 'READY',
                fields: [
                  { fieldPath: 'outstanding', order: 'ASCENDING' },
                  { fieldPath: 'createTime', order: 'ASCENDING' },
                  { fieldPath: '__name__', order: 'ASCENDING' },
                ],
              },
            ],
            nextPageToken: 'page2',
          },
    ];
  }
  if (path === '/v1/projects/denied/services:batchGet') {
    return [
      403,
      {
        error: {
          code: 403,
          message: 'Permission denied to get service [aiplatform.googleapis.com]',
          status: 'PERMISSION_DENIED',
        },
      },
    ];
  }
  if (path === '/v1/userinfo') return [200, { email: 'ops@example.com' }];
  return [500, { error: { message: `unexpected ${method} ${path}` } }];
}

beforeAll(async () => {
  server = createServer((req, res) => {
    void body(req).then((text) => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        body: text,
        auth: req.headers.authorization ?? '',
      });
      // A second page is asked with its token; the answer function sees it as the text.
      const [status, data] = answer(
        req.method ?? 'GET',
        decodeURIComponent(url.pathname),
        url.searchParams.get('pageToken') ?? text,
      );
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(data));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const endpoints: CheckEndpoints = {
    serviceUsage: base,
    resourceManager: base,
    storage: base,
    pubsub: base,
    firestore: base,
    userinfo: base,
  };
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'token-1', expiry_date: Date.now() + 3600e3 });
  checks = createCloudChecks({ project: 'demo-p', auth, endpoints });
  deniedChecks = createCloudChecks({ project: 'denied', auth, endpoints });
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('doctor: the cloud checks over REST', () => {
  it('names the APIs that are not enabled (batchGet with one names= per API)', async () => {
    const missing = await checks.disabledServices([
      'aiplatform.googleapis.com',
      'pubsub.googleapis.com',
      'firestore.googleapis.com',
    ]);
    expect(missing).toEqual(['pubsub.googleapis.com', 'firestore.googleapis.com']);
    const call = seen.find((s) => s.url.includes('batchGet'));
    expect(call?.url).toContain(
      'names=projects%2Fdemo-p%2Fservices%2Faiplatform.googleapis.com&names=',
    );
    expect(call?.auth).toBe('Bearer token-1');
  });

  it('names the permissions the caller lacks on the project, a bucket and the topic', async () => {
    expect(
      await checks.missingPermissions({ kind: 'project' }, [
        'datastore.entities.get',
        'aiplatform.batchPredictionJobs.cancel',
      ]),
    ).toEqual(['aiplatform.batchPredictionJobs.cancel']);
    expect(
      await checks.missingPermissions({ kind: 'bucket', bucket: 'out' }, [
        'storage.objects.get',
        'storage.objects.list',
      ]),
    ).toEqual(['storage.objects.list']);
    expect(
      await checks.missingPermissions({ kind: 'topic', topic: 'events' }, [
        'pubsub.topics.publish',
      ]),
    ).toEqual(['pubsub.topics.publish']);
    expect(seen.find((s) => s.url.includes('testPermissions'))?.url).toContain(
      'permissions=storage.objects.get&permissions=storage.objects.list',
    );
  });

  it('tells existing from missing topics and buckets', async () => {
    expect(await checks.topicExists('events')).toBe(true);
    expect(await checks.topicExists('projects/demo-p/topics/missing')).toBe(false);
    expect(await checks.bucketExists('out')).toBe(true);
    expect(await checks.bucketExists('gone')).toBe(false);
  });

  it('reads the database and every page of indexes, without the __name__ field', async () => {
    expect(await checks.firestoreDatabase()).toEqual({
      type: 'FIRESTORE_NATIVE',
      locationId: 'nam5',
    });
    expect(await checks.firestoreIndexes('batchJobs')).toEqual([
      {
        queryScope: 'COLLECTION',
        state: 'READY',
        fields: [
          { fieldPath: 'outstanding', order: 'ASCENDING' },
          { fieldPath: 'createTime', order: 'ASCENDING' },
        ],
      },
    ]);
    expect(seen.filter((s) => s.url.includes('/indexes'))).toHaveLength(2);
  });

  it('names the caller', async () => {
    expect(await checks.identity()).toBe('ops@example.com');
  });

  it("a refusal carries the status and Google's own message", async () => {
    const err = await deniedChecks
      .disabledServices(['aiplatform.googleapis.com'])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CloudCheckError);
    expect(err).toMatchObject({
      status: 403,
      message:
        'HTTP 403 PERMISSION_DENIED: Permission denied to get service [aiplatform.googleapis.com]',
    });
  });
});
