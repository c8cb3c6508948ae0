/**
 * The module against the providers' real schemas, without Terraform: every resource and data source
 * type exists in the provider it uses, every argument and block it writes exists at that depth
 * (a block as a block, an argument as an argument), every required one is written, and a block
 * that may appear once appears once. The schemas are test/terraform/provider-schema.json, extracted
 * from the providers' prebuilt CDKTF bindings by scripts/terraform-schema.mjs.
 *
 * What Terraform itself would still check: values (types, enums, formats), conflicts between
 * arguments, expressions. This check answers "would `terraform validate` know these names".
 */
import { readFileSync } from 'node:fs';
import { parse } from '@cdktf/hcl2json';
import { z } from 'zod';
import {
  providerOf,
  SCHEMA_FILE,
  type Argument,
  type Block,
  type Body,
  type Extract,
  type ProviderExtract,
} from '../../scripts/terraform-schema.mjs';
import { isObject, type Check, type Json, type JsonObject } from './tf-module.js';

const ARGUMENT = z.strictObject({
  type: z.string(),
  required: z.boolean(),
  values: z.array(z.string()).optional(),
});
const BLOCK: z.ZodType<Block> = z.lazy(() =>
  z.strictObject({
    required: z.boolean(),
    list: z.boolean(),
    arguments: z.record(z.string(), ARGUMENT),
    blocks: z.record(z.string(), BLOCK),
  }),
);
const BODY: z.ZodType<Body> = z.strictObject({
  arguments: z.record(z.string(), ARGUMENT),
  blocks: z.record(z.string(), BLOCK),
});
const EXTRACT: z.ZodType<Extract> = z.strictObject({
  $comment: z.string(),
  providers: z.record(
    z.string(),
    z.strictObject({
      source: z.string(),
      version: z.string(),
      package: z.string(),
      provider: BODY,
      resources: z.record(z.string(), BODY),
      dataSources: z.record(z.string(), BODY),
      resourceTypes: z.array(z.string()),
      dataSourceTypes: z.array(z.string()),
    }),
  ),
});

/** What hcl2json gives for a file's `provider "name" { … }` blocks. */
const PROVIDER_BLOCKS = z.object({
  provider: z.record(z.string(), z.array(z.record(z.string(), z.json()))).optional(),
});

/** The committed extract, its shape checked. */
export function loadExtract(): Extract {
  return EXTRACT.parse(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')));
}

/** Meta-arguments Terraform itself takes, per kind of block. */
const META = {
  resource: new Set([
    'count',
    'for_each',
    'depends_on',
    'provider',
    'lifecycle',
    'provisioner',
    'connection',
  ]),
  data: new Set(['count', 'for_each', 'depends_on', 'provider', 'lifecycle']),
  provider: new Set(['alias', 'version']),
  none: new Set<string>(),
};
const LIFECYCLE = new Set([
  'create_before_destroy',
  'prevent_destroy',
  'ignore_changes',
  'replace_triggered_by',
  'precondition',
  'postcondition',
]);
const DYNAMIC = new Set(['for_each', 'iterator', 'labels', 'content']);

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The closest of `names` to `name`, when close enough to be a misspelling. */
function closest(name: string, names: Iterable<string>): string | undefined {
  let best: [number, string] | undefined;
  for (const n of names) {
    const d = distance(name, n);
    if (d <= Math.max(2, Math.floor(name.length / 5)) && (best === undefined || d < best[0])) {
      best = [d, n];
    }
  }
  return best?.[1];
}

/** Where else in a resource's schema `name` is an argument or a block, as paths. */
function placesOf(name: string, body: Body, path = ''): string[] {
  const here = name in body.arguments || name in body.blocks ? [path || '(top level)'] : [];
  return [
    ...here,
    ...Object.entries(body.blocks).flatMap(([block, nested]) =>
      placesOf(name, nested, path ? `${path}.${block}` : block),
    ),
  ];
}

/** True for a value hcl2json gives for block syntax (`x { … }`): a list of objects. */
function blockSyntax(v: Json | undefined): v is JsonObject[] {
  return Array.isArray(v) && v.length > 0 && v.every(isObject);
}

interface Where {
  /** Address and path for messages, e.g. google_logging_metric.x.metric_descriptor. */
  path: string;
  /** The schema of the whole resource (to say where a misplaced name belongs). */
  root: Body;
  /** Path of this body inside the resource ('' at the top). */
  inner: string;
  /** e.g. "google 6.50.0". */
  provider: string;
}

function unknownName(at: Where, key: string, schema: Body): string {
  const suggestion = closest(key, [
    ...Object.keys(schema.arguments),
    ...Object.keys(schema.blocks),
  ]);
  const elsewhere = placesOf(key, at.root).filter((p) => p !== (at.inner || '(top level)'));
  const hint = suggestion
    ? `; did you mean ${suggestion}?`
    : elsewhere.length > 0
      ? `; it belongs in ${elsewhere.join(' or ')}`
      : '';
  return `${at.path}: no argument or block "${key}" here (${at.provider})${hint}`;
}

/**
 * Literal values of an argument the provider checks against a list (a list argument: each
 * element). Expressions are Terraform's to evaluate; an optional argument may also be "" (the
 * provider's enum validation admits it for optional fields).
 */
function checkValues(path: string, value: Json | undefined, argument: Argument): string[] {
  const admitted = argument.values;
  if (admitted === undefined) return [];
  const literals = (Array.isArray(value) ? value : [value]).filter(
    (v): v is string => typeof v === 'string' && !v.includes('${'),
  );
  return literals
    .filter((v) => !admitted.includes(v) && !(v === '' && !argument.required))
    .map((v) => {
      const suggestion = closest(v, admitted);
      return `${path}: "${v}" is not one of the values the provider admits${suggestion ? `; did you mean ${suggestion}?` : ` (${admitted.join(', ')})`}`;
    });
}

/** The problems of one body (resource, block, provider) against its schema. */
function checkBody(at: Where, body: JsonObject, schema: Body, meta: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const nested = (name: string, block: Block, value: JsonObject): string[] =>
    checkBody(
      {
        ...at,
        path: `${at.path}.${name}`,
        inner: at.inner ? `${at.inner}.${name}` : name,
      },
      value,
      block,
      META.none,
    );
  const dynamicNames = new Set<string>();

  for (const [key, value] of Object.entries(body)) {
    if (meta.has(key)) {
      if (key === 'lifecycle' && blockSyntax(value)) {
        for (const name of value.flatMap((v) => Object.keys(v))) {
          if (!LIFECYCLE.has(name))
            problems.push(`${at.path}.lifecycle: no "${name}" in lifecycle`);
        }
      }
      continue;
    }
    if (key === 'dynamic' && isObject(value)) {
      for (const [name, list] of Object.entries(value)) {
        dynamicNames.add(name);
        const block = schema.blocks[name];
        if (block === undefined) {
          problems.push(unknownName(at, name, schema).replace(`"${name}"`, `dynamic "${name}"`));
          continue;
        }
        for (const d of blockSyntax(list) ? list : []) {
          for (const k of Object.keys(d).filter((k) => !DYNAMIC.has(k))) {
            problems.push(
              `${at.path}: dynamic "${name}" has "${k}"; it takes ${[...DYNAMIC].join(', ')}`,
            );
          }
          const content = blockSyntax(d.content) ? d.content[0] : undefined;
          if (content === undefined) problems.push(`${at.path}: dynamic "${name}" has no content`);
          else problems.push(...nested(name, block, content));
        }
      }
      continue;
    }
    const argument = schema.arguments[key];
    if (argument !== undefined) {
      // `x { … }` for an argument (hcl2json cannot tell it from `x = [{ … }]`, which only an
      // argument of objects takes).
      if (blockSyntax(value) && !/^(any|list\((any|map\(.*\))\))$/.test(argument.type)) {
        problems.push(`${at.path}.${key} is an argument (${argument.type}): write ${key} = …`);
      }
      problems.push(...checkValues(`${at.path}.${key}`, value, argument));
      continue;
    }
    const block = schema.blocks[key];
    if (block !== undefined) {
      if (!blockSyntax(value)) {
        problems.push(`${at.path}.${key} is a block: write ${key} { … }, not ${key} = …`);
        continue;
      }
      if (!block.list && value.length > 1) {
        problems.push(`${at.path}: ${value.length} ${key} blocks; at most one is allowed`);
      }
      for (const v of value) problems.push(...nested(key, block, v));
      continue;
    }
    problems.push(unknownName(at, key, schema));
  }

  for (const [name, argument] of Object.entries(schema.arguments)) {
    if (argument.required && !(name in body)) {
      problems.push(`${at.path}: missing required argument ${name}`);
    }
  }
  for (const [name, block] of Object.entries(schema.blocks)) {
    if (block.required && !(name in body) && !dynamicNames.has(name)) {
      problems.push(`${at.path}: missing required block ${name}`);
    }
  }
  return problems;
}

/** Which provider has a type, for a hint when a type is used with the wrong one. */
function ownersOf(extract: Extract, kind: 'resourceTypes' | 'dataSourceTypes', type: string) {
  return Object.entries(extract.providers)
    .filter(([, p]) => p[kind].includes(type))
    .map(([name]) => name);
}

/** A resource or data source type's schema in its provider, or the problem why there is none. */
function schemaOf(
  extract: Extract,
  kind: 'resource' | 'data',
  type: string,
  body: JsonObject,
): { provider: ProviderExtract; schema: Body } | string {
  const name = providerOf(type, body);
  const provider = extract.providers[name];
  if (provider === undefined) {
    return `provider ${name} has no schema extract (PINS in scripts/terraform-schema.mjs)`;
  }
  const [types, schemas] =
    kind === 'resource'
      ? (['resourceTypes', provider.resources] as const)
      : (['dataSourceTypes', provider.dataSources] as const);
  if (!provider[types].includes(type)) {
    const others = ownersOf(extract, types, type);
    const suggestion = closest(type, provider[types]);
    const hint =
      others.length > 0
        ? `; ${others.join(', ')} has it: set provider = ${others[0]}`
        : suggestion
          ? `; did you mean ${suggestion}?`
          : '';
    return `${name} ${provider.version} has no ${kind === 'resource' ? 'resource' : 'data source'} type ${type}${hint}`;
  }
  const schema = schemas[type];
  if (schema === undefined) {
    return `${type} is not in test/terraform/provider-schema.json yet: run node scripts/terraform-schema.mjs`;
  }
  return { provider, schema };
}

/** The check: every resource, data source and provider block of the module. */
export function schemaCheck(extract: Extract): Check {
  return async (m) => {
    const problems: string[] = [];
    for (const [kind, blocks] of [
      ['resource', m.resource],
      ['data', m.data],
    ] as const) {
      for (const [type, named] of Object.entries(blocks)) {
        for (const [name, body] of Object.entries(named)) {
          const address = `${kind === 'data' ? 'data.' : ''}${type}.${name}`;
          const found = schemaOf(extract, kind, type, body);
          if (typeof found === 'string') {
            problems.push(`${address}: ${found}`);
            continue;
          }
          const at = {
            path: address,
            root: found.schema,
            inner: '',
            provider: `${found.provider.source} ${found.provider.version}`,
          };
          problems.push(...checkBody(at, body, found.schema, META[kind]));
        }
      }
    }
    // Provider blocks: tf-module keeps no provider blocks, so each file is read again.
    for (const [file, text] of Object.entries(m.text)) {
      const json = PROVIDER_BLOCKS.parse(await parse(file, text));
      for (const [name, bodies] of Object.entries(json.provider ?? {})) {
        const provider = extract.providers[name];
        if (provider === undefined) {
          problems.push(`provider.${name}: no such provider in the schema extract`);
          continue;
        }
        for (const body of bodies) {
          const at = {
            path: `provider.${name}`,
            root: provider.provider,
            inner: '',
            provider: `${provider.source} ${provider.version}`,
          };
          problems.push(...checkBody(at, body, provider.provider, META.provider));
        }
      }
    }
    return problems;
  };
}
