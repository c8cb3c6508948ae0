/** Types of scripts/terraform-schema.mjs, for the tests that import it. */

/** One provider's pinned CDKTF bindings. */
export interface Pin {
  /** Local name in terraform/versions.tf, e.g. google-beta. */
  provider: string;
  /** Registry source, e.g. hashicorp/google. */
  source: string;
  /** Provider version the bindings were generated from. */
  version: string;
  /** npm package of the bindings. */
  package: string;
  packageVersion: string;
  /** npm's integrity of the package's tarball. */
  integrity: string;
}

export interface Argument {
  /** string, number, bool, list(T), map(T) or any. */
  type: string;
  required: boolean;
  /** The only values the provider admits (for a list, for each element), where it checks a list. */
  values?: string[];
}

export interface Body {
  arguments: Record<string, Argument>;
  blocks: Record<string, Block>;
}

export interface Block extends Body {
  /** At least one such block must be written. */
  required: boolean;
  /** The block may repeat; false: at most one. */
  list: boolean;
}

export interface ProviderExtract {
  source: string;
  version: string;
  /** package@version the extract comes from. */
  package: string;
  /** The provider block's schema. */
  provider: Body;
  resources: Record<string, Body>;
  dataSources: Record<string, Body>;
  /** Every resource type of the provider. */
  resourceTypes: string[];
  /** Every data source type of the provider. */
  dataSourceTypes: string[];
}

export interface Extract {
  $comment: string;
  providers: Record<string, ProviderExtract>;
}

export declare const SCHEMA_FILE: string;
export declare const PINS: readonly Pin[];

export declare function extractProvider(
  jsii: unknown,
  pin: Pin,
  wanted: { resources: readonly string[]; dataSources: readonly string[] },
): ProviderExtract;

export declare function installedManifest(pin: Pin): unknown;

export declare function providerOf(type: string, body: Record<string, unknown>): string;

export declare function buildExtract(manifestOf?: (pin: Pin) => unknown): Promise<string>;
