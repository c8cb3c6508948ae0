#!/usr/bin/env node
/**
 * `npm run terraform:schema`: extracts the part of the Terraform providers' schemas that terraform/
 * uses into test/terraform/provider-schema.json, which test/terraform/provider-schema.test.ts
 * checks the module against (every resource type, argument and block exists; every required one is
 * set) without Terraform, the providers or a network.
 *
 * The source is the prebuilt CDKTF bindings of each provider on npm: their `.jsii` manifest lists
 * every resource and data source with its arguments, nested blocks (a struct type) and whether
 * each is required, generated from the provider's own schema. The packages weigh about 640 MB
 * installed (two 98 MB manifests), so they are not dependencies: this script takes each pinned
 * tarball with `npm pack` (checked against the pinned integrity) or, when it is installed with the
 * pinned version, reads node_modules. The output is the same either way.
 *
 *   node scripts/terraform-schema.mjs            write the extract
 *   node scripts/terraform-schema.mjs --check    exit 1 when the committed extract is stale
 *
 * What is kept per provider: the names of all its resource and data source types (so that a
 * misspelt type is told from one not extracted yet), the provider block's schema, and the full
 * schema of each type the module uses with that provider.
 */
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TF_DIR = path.join(ROOT, 'terraform');
export const SCHEMA_FILE = path.join(ROOT, 'test', 'terraform', 'provider-schema.json');

/**
 * The bindings used, one per provider of terraform/versions.tf. These are the last ones published
 * (HashiCorp stopped publishing prebuilt bindings in December 2025): google and google-beta 6.50.0
 * (versions.tf admits 6.x and 7.x), archive 2.7.1 (versions.tf admits 2.4 to 2.x).
 */
export const PINS = [
  {
    provider: 'google',
    source: 'hashicorp/google',
    version: '6.50.0',
    package: '@cdktf/provider-google',
    packageVersion: '16.12.1',
    integrity:
      'sha512-KqNA/5RiFT07r0PSZ6/07cJ2zESUgbj1JchVj21iBFBZVUbD+578xA/k8eq/r0cbyEgLmg9eYWeVslaYah4DCQ==',
  },
  {
    provider: 'google-beta',
    source: 'hashicorp/google-beta',
    version: '6.50.0',
    package: '@cdktf/provider-google-beta',
    packageVersion: '16.12.1',
    integrity:
      'sha512-ip0dXu0ZrsyMgcoGNfkJCYG8PFjNtfb2wkz4Sw7IU09rQMK/A6++SwkmFHl8wJ8KlwMvd2w4tNXfErIbWWWqag==',
  },
  {
    provider: 'archive',
    source: 'hashicorp/archive',
    version: '2.7.1',
    package: '@cdktf/provider-archive',
    packageVersion: '11.0.1',
    integrity:
      'sha512-2Plwhj1hVUOYmQrxNbBvy2nrw/gyHZKnQFauPCwjhQX+MpRImF7cceKgX8zZgBPvB5YEP75MIFPbr4sjxDWeHw==',
  },
];

// --- Reading a .jsii manifest ----------------------------------------------------------------------

/** The struct a property's type names (a nested block), and whether it may repeat; else null. */
function structOf(types, type) {
  if (type.fqn !== undefined) {
    const t = types[type.fqn];
    return t?.kind === 'interface' && t.datatype ? { fqn: type.fqn, list: false } : null;
  }
  for (const member of type.union?.types ?? []) {
    const found = structOf(types, member);
    if (found) return found;
  }
  if (type.collection?.kind === 'array') {
    const found = structOf(types, type.collection.elementtype);
    return found ? { ...found, list: true } : null;
  }
  return null;
}

/** An argument's type in Terraform's words: string, number, bool, list(string), map(string), any. */
function typeOf(type) {
  if (type.primitive !== undefined) {
    return { string: 'string', number: 'number', boolean: 'bool' }[type.primitive] ?? 'any';
  }
  if (type.union) {
    const own = type.union.types.filter((t) => t.fqn !== 'cdktf.IResolvable');
    return own.length === 1 ? typeOf(own[0]) : 'any';
  }
  if (type.collection) {
    const element = typeOf(type.collection.elementtype);
    return type.collection.kind === 'map' ? `map(${element})` : `list(${element})`;
  }
  return 'any';
}

/**
 * A property's Terraform name. CDKTF renames properties to camelCase, and some further (`build`
 * becomes `buildAttribute`, `source_md5hash` becomes `sourceMd5Hash`); the registry link in each
 * property's docs keeps the original. A few docs are garbled (a description containing `*\/`):
 * then a plain camelCase name without digits is converted back, and anything else is refused.
 */
function terraformName(owner, property) {
  const m = /#([a-z0-9_]+) \w+#\1\}/.exec(JSON.stringify(property.docs ?? {}));
  if (m) return m[1];
  if (/^[a-z][a-zA-Z]*$/.test(property.name) && !property.name.endsWith('Attribute')) {
    return property.name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  }
  throw new Error(`${owner}.${property.name}: no Terraform name in its docs`);
}

/**
 * The values an argument admits, where the provider validates it against a list: its docs then end
 * with `Possible values: ["A", "B"]` (generated from that same validation).
 */
function possibleValues(property) {
  const docs = [property.docs?.summary, property.docs?.remarks].join(' ').replace(/\s+/g, ' ');
  const list = /Possible values: \[([^\]]*)\]/.exec(docs)?.[1];
  return list === undefined ? undefined : [...list.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
}

/**
 * The schema of a struct: its arguments (type, required, admitted values) and its nested blocks,
 * recursively.
 */
function bodyOf(types, fqn) {
  const struct = types[fqn];
  // An empty block (`automatic_update_policy {}`) is a struct without properties.
  if (struct?.kind !== 'interface' || !struct.datatype) throw new Error(`${fqn}: not a struct`);
  const foreign = (struct.interfaces ?? []).filter((i) => !i.startsWith('cdktf.'));
  if (foreign.length > 0) throw new Error(`${fqn} inherits ${foreign.join(', ')}: not supported`);
  const body = { arguments: {}, blocks: {} };
  for (const property of [...(struct.properties ?? [])].sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    const name = terraformName(fqn, property);
    const nested = structOf(types, property.type);
    if (nested) {
      body.blocks[name] = {
        required: property.optional !== true,
        list: nested.list,
        ...bodyOf(types, nested.fqn),
      };
    } else {
      const values = possibleValues(property);
      body.arguments[name] = {
        type: typeOf(property.type),
        required: property.optional !== true,
        ...(values ? { values } : {}),
      };
    }
  }
  body.arguments = sortKeys(body.arguments);
  body.blocks = sortKeys(body.blocks);
  return body;
}

function sortKeys(o) {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Resource, data source and provider classes of a manifest, by Terraform name. */
function classesOf(jsii) {
  const kinds = {
    'cdktf.TerraformResource': 'resources',
    'cdktf.TerraformDataSource': 'dataSources',
    'cdktf.TerraformProvider': 'provider',
  };
  const found = { resources: new Map(), dataSources: new Map(), provider: new Map() };
  for (const type of Object.values(jsii.types)) {
    const kind = type.kind === 'class' ? kinds[type.base] : undefined;
    if (kind === undefined) continue;
    // "Represents a {@link https://registry.terraform.io/.../logging_metric google_logging_metric}."
    const name = /\{@link \S+ ([\w-]+)\}/.exec(type.docs?.summary ?? '')?.[1];
    const config = type.initializer?.parameters?.find((p) => p.name === 'config')?.type.fqn;
    if (name === undefined || config === undefined) throw new Error(`${type.fqn}: unreadable`);
    found[kind].set(name, config);
  }
  return found;
}

/**
 * The extract of one provider from its parsed `.jsii` manifest: all type names, the provider
 * block, and the schemas of the `resources` and `dataSources` asked for (an unknown one is left
 * out: the check reports it as misspelt).
 */
export function extractProvider(jsii, pin, wanted) {
  if (jsii.name !== pin.package || jsii.version !== pin.packageVersion) {
    throw new Error(
      `expected ${pin.package}@${pin.packageVersion}, got ${jsii.name}@${jsii.version}`,
    );
  }
  const classes = classesOf(jsii);
  const [providerConfig] = classes.provider.values();
  if (providerConfig === undefined) throw new Error(`${pin.package}: no provider class`);
  const schemas = (kind, names) =>
    Object.fromEntries(
      [...new Set(names)]
        .filter((n) => classes[kind].has(n))
        .sort()
        .map((n) => [n, bodyOf(jsii.types, classes[kind].get(n))]),
    );
  return {
    source: pin.source,
    version: pin.version,
    package: `${pin.package}@${pin.packageVersion}`,
    provider: bodyOf(jsii.types, providerConfig),
    resources: schemas('resources', wanted.resources),
    dataSources: schemas('dataSources', wanted.dataSources),
    resourceTypes: [...classes.resources.keys()].sort(),
    dataSourceTypes: [...classes.dataSources.keys()].sort(),
  };
}

// --- Getting the manifests ---------------------------------------------------------------------------

/** The manifest of the pinned package as installed in node_modules, or undefined. */
export function installedManifest(pin) {
  let manifest;
  try {
    manifest = createRequire(path.join(ROOT, 'package.json')).resolve(
      `${pin.package}/package.json`,
    );
  } catch {
    return undefined;
  }
  const dir = path.dirname(manifest);
  const { version } = JSON.parse(readFileSync(manifest, 'utf8'));
  if (version !== pin.packageVersion) {
    throw new Error(
      `${pin.package}@${version} is installed, but ${pin.packageVersion} is pinned in scripts/terraform-schema.mjs`,
    );
  }
  return JSON.parse(readFileSync(path.join(dir, '.jsii'), 'utf8'));
}

/** The manifest from the pinned tarball (npm's cache or the registry), integrity checked. */
function packedManifest(pin) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'terraform-schema-'));
  try {
    const spec = `${pin.package}@${pin.packageVersion}`;
    const pack = run('npm', ['pack', spec, '--json', '--pack-destination', dir]);
    const [info] = JSON.parse(pack);
    if (info?.integrity !== pin.integrity) {
      throw new Error(`${spec}: integrity ${info?.integrity}, pinned ${pin.integrity}`);
    }
    run('tar', ['-xzf', path.join(dir, info.filename), '-C', dir, 'package/.jsii']);
    return JSON.parse(readFileSync(path.join(dir, 'package', '.jsii'), 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr || result.error}`);
  }
  return result.stdout;
}

// --- The module's types --------------------------------------------------------------------------------

/** The provider a resource or data source body uses: its `provider` argument, else its prefix. */
export function providerOf(type, body) {
  const explicit = typeof body.provider === 'string' ? /^\$\{([\w-]+)/.exec(body.provider) : null;
  return explicit?.[1] ?? type.split('_')[0];
}

/** The resource and data source types of terraform/*.tf, per provider. */
async function moduleTypes() {
  const { parse } = await import('@cdktf/hcl2json');
  const wanted = new Map(PINS.map((p) => [p.provider, { resources: [], dataSources: [] }]));
  for (const file of readdirSync(TF_DIR).filter((f) => f.endsWith('.tf'))) {
    const json = await parse(file, readFileSync(path.join(TF_DIR, file), 'utf8'));
    for (const [kind, key] of [
      ['resource', 'resources'],
      ['data', 'dataSources'],
    ]) {
      for (const [type, named] of Object.entries(json[kind] ?? {})) {
        for (const bodies of Object.values(named)) {
          for (const body of bodies) wanted.get(providerOf(type, body))?.[key].push(type);
        }
      }
    }
  }
  return wanted;
}

/** The whole extract, as the text written to SCHEMA_FILE (Prettier's JSON style). */
export async function buildExtract(
  manifestOf = (pin) => installedManifest(pin) ?? packedManifest(pin),
) {
  const wanted = await moduleTypes();
  const providers = {};
  for (const pin of PINS) {
    providers[pin.provider] = extractProvider(manifestOf(pin), pin, wanted.get(pin.provider));
  }
  const extract = {
    $comment:
      'Generated by scripts/terraform-schema.mjs (npm run terraform:schema) from the prebuilt CDKTF bindings of each provider; do not edit.',
    providers,
  };
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(SCHEMA_FILE)) ?? {};
  return prettier.format(JSON.stringify(extract), { ...options, parser: 'json' });
}

async function main() {
  const text = await buildExtract();
  const relative = path.relative(ROOT, SCHEMA_FILE);
  if (process.argv.includes('--check')) {
    const current = existsSync(SCHEMA_FILE) ? readFileSync(SCHEMA_FILE, 'utf8') : '';
    if (current !== text) {
      console.error(`${relative} is stale: run npm run terraform:schema`);
      process.exitCode = 1;
      return;
    }
    console.log(`${relative} is up to date`);
    return;
  }
  await writeFile(SCHEMA_FILE, text);
  console.log(`wrote ${relative} (${text.length} bytes)`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
