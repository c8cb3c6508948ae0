/**
 * A Pub/Sub emulator built into the repository, for machines without the Google Cloud CLI (and so
 * without the official Java emulator). It speaks the google.pubsub.v1 gRPC API on 127.0.0.1 well
 * enough for the unmodified `@google-cloud/pubsub` client (`PUBSUB_EMULATOR_HOST=127.0.0.1:PORT`)
 * as the product, the offline stack and the tests use it: CreateTopic, ListTopics,
 * ListTopicSubscriptions, Publish, CreateSubscription, Pull, StreamingPull, Acknowledge and
 * ModifyAckDeadline. Every other RPC answers UNIMPLEMENTED. Nothing is persisted.
 */
import { createRequire } from 'node:module';
import {
  Server,
  ServerCredentials,
  status,
  type handleUnaryCall,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';
import { RpcError, type StreamCall } from './subscriptions.js';
import { Broker } from './topics.js';

/** A running builtin Pub/Sub emulator. */
export interface PubSubEmulator {
  /** `127.0.0.1:PORT`, the form `PUBSUB_EMULATOR_HOST` and the client's `apiEndpoint` take. */
  readonly host: string;
  readonly port: number;
  /** Ends every stream, call and timer, then stops listening. */
  close(): Promise<void>;
}

/** Options of {@link startPubSubEmulator}. */
export interface PubSubEmulatorOptions {
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** Receives one object per request that failed unexpectedly (an INTERNAL status). */
  log?: (line: object) => void;
}

/** The fields of the requests served (proto-loader leaves unset fields out). */
interface Request extends Record<string, unknown> {
  project?: string;
  topic?: string;
  subscription?: string;
  messages?: { data?: Buffer; attributes?: Record<string, string> }[];
  maxMessages?: number;
  ackIds?: string[];
  ackDeadlineSeconds?: number;
}

/** A service of the google.pubsub.v1 descriptor that ships with `@google-cloud/pubsub`. */
function service(name: 'Publisher' | 'Subscriber'): ServiceDefinition {
  const json: unknown = createRequire(import.meta.url)(
    '@google-cloud/pubsub/build/protos/protos.json',
  );
  const found = fromJSON(json as object, { longs: String, enums: String, oneofs: true })[
    `google.pubsub.v1.${name}`
  ];
  if (!found || 'format' in found) throw new Error(`${name} is not a service`);
  return found;
}

/** Starts the emulator on 127.0.0.1 and resolves once it accepts connections. */
export async function startPubSubEmulator(
  options: PubSubEmulatorOptions = {},
): Promise<PubSubEmulator> {
  const broker = new Broker();
  const unary =
    (fn: (req: Request) => unknown): handleUnaryCall<Request, unknown> =>
    (call, callback) => {
      try {
        callback(null, fn(call.request));
      } catch (err) {
        const rpc = err instanceof RpcError ? err : new RpcError(status.INTERNAL, String(err));
        if (rpc.code === status.INTERNAL) {
          options.log?.({ severity: 'ERROR', method: call.getPath(), error: String(err) });
        }
        callback(rpc);
      }
    };
  const server = new Server({
    'grpc.max_receive_message_length': 32 * 1024 * 1024,
    'grpc.max_send_message_length': 32 * 1024 * 1024,
  });
  const sub = (req: Request) => broker.subscription(req.subscription);
  server.addService(service('Publisher'), {
    createTopic: unary((req) => broker.createTopic(req)),
    listTopics: unary((req) => broker.listTopics(req)),
    listTopicSubscriptions: unary((req) => broker.listTopicSubscriptions(req)),
    publish: unary((req) => broker.publish(req)),
  });
  server.addService(service('Subscriber'), {
    createSubscription: unary((req) => broker.createSubscription(req)),
    pull: unary((req) => ({ receivedMessages: sub(req).pull(req.maxMessages ?? 0) })),
    acknowledge: unary((req) => {
      sub(req).ack(req.ackIds ?? []);
      return {};
    }),
    modifyAckDeadline: unary((req) => {
      sub(req).modify(req.ackIds ?? [], req.ackDeadlineSeconds ?? 0);
      return {};
    }),
    streamingPull: (call: StreamCall) => broker.streamingPull(call),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `127.0.0.1:${options.port ?? 0}`,
      ServerCredentials.createInsecure(),
      (err, bound) => (err ? reject(err) : resolve(bound)),
    ),
  );
  return {
    host: `127.0.0.1:${port}`,
    port,
    close: async () => {
      broker.shutdown();
      server.forceShutdown();
    },
  };
}
