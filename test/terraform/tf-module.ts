/**
 * The Terraform module in terraform/, read without Terraform: @cdktf/hcl2json parses each .tf file
 * into JSON, and its expression parser answers what an expression refers to, its syntax tree, and
 * the value of a literal. The tests' checks are `(module) => problems`; a mutation edits the text
 * of one file before parsing, so that each key check is proven able to fail.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  getExpressionAst,
  getReferencesInExpression,
  parse,
  type TFExpressionSyntaxTree,
} from '@cdktf/hcl2json';
import { beforeAll, describe, expect, it } from 'vitest';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TF_DIR = path.join(ROOT, 'terraform');

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}
export type Ast = TFExpressionSyntaxTree.ExpressionType;

/** Every .tf file's blocks merged, keyed the way Terraform addresses them. */
export interface TfModule {
  /** File name → source text (after any mutation). */
  text: Record<string, string>;
  variable: Record<string, JsonObject>;
  locals: JsonObject;
  resource: Record<string, Record<string, JsonObject>>;
  data: Record<string, Record<string, JsonObject>>;
  output: Record<string, JsonObject>;
}

export type Check = (m: TfModule) => Promise<string[]>;

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** hcl2json answers `any`: prove it is plain JSON before anything reads it. */
function toJson(v: unknown): Json {
  if (v === null || ['boolean', 'number', 'string'].includes(typeof v)) return v as Json;
  if (Array.isArray(v)) return v.map(toJson);
  if (typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  }
  throw new Error(`not JSON: ${typeof v}`);
}

/** A value as text for messages and comparisons: strings as they are, anything else as JSON. */
export function str(v: Json | undefined): string {
  return typeof v === 'string' ? v : JSON.stringify(v ?? null);
}

/** A block as hcl2json writes it (a list of bodies), as its first body. */
export function block(v: Json | undefined): JsonObject | undefined {
  const first = Array.isArray(v) ? v[0] : v;
  return isObject(first) ? first : undefined;
}

/** Parses the module; `edit` may rewrite a file's text first (it must change it). */
export async function loadModule(edit?: (file: string, text: string) => string): Promise<TfModule> {
  const m: TfModule = { text: {}, variable: {}, locals: {}, resource: {}, data: {}, output: {} };
  const files = readdirSync(TF_DIR).filter((f) => f.endsWith('.tf'));
  for (const file of files.sort()) {
    const text = readFileSync(path.join(TF_DIR, file), 'utf8');
    m.text[file] = edit ? edit(file, text) : text;
    const json = toJson(await parse(file, m.text[file]));
    if (!isObject(json)) throw new Error(`${file}: hcl2json did not answer an object`);
    for (const body of Array.isArray(json.locals) ? json.locals : []) {
      if (isObject(body)) Object.assign(m.locals, body);
    }
    for (const kind of ['variable', 'output'] as const) {
      for (const [name, v] of Object.entries(isObject(json[kind]) ? json[kind] : {})) {
        const body = block(v);
        if (body) m[kind][name] = body;
      }
    }
    for (const kind of ['resource', 'data'] as const) {
      for (const [type, named] of Object.entries(isObject(json[kind]) ? json[kind] : {})) {
        for (const [name, v] of Object.entries(isObject(named) ? named : {})) {
          const body = block(v);
          if (body) (m[kind][type] ??= {})[name] = body;
        }
      }
    }
  }
  return m;
}

/** An edit of one file's text before parsing. */
export type Edit = (file: string, text: string) => string;

/** Replaces `from` in `target`; `from` must occur, or the mutation would silently test nothing. */
export function replaceIn(target: string, from: string, to: string): Edit {
  return (file, text) => {
    if (file !== target) return text;
    if (!text.includes(from)) throw new Error(`mutation: ${target} has no ${JSON.stringify(from)}`);
    return text.replace(from, to);
  };
}

/** Deletes the block that opens with the line `header` (up to its closing `}` line). */
export function removeBlock(target: string, header: string): Edit {
  return (file, text) => {
    if (file !== target) return text;
    const start = text.indexOf(`${header}\n`);
    const end = text.indexOf('\n}\n', start);
    if (start < 0 || end < 0) throw new Error(`mutation: ${target} has no block ${header}`);
    return text.slice(0, start) + text.slice(end + 3);
  };
}

/** Appends text to `target`. */
export function appendTo(target: string, addition: string): Edit {
  return (file, text) => (file === target ? `${text}\n${addition}\n` : text);
}

// --- Expressions ---------------------------------------------------------------------------------

const referenceCache = new Map<string, Promise<string[]>>();

/**
 * A string value back as template source. hcl2json gives the literal parts of a string decoded
 * (`"` for `\"`, a newline for `\n`) but its `${…}` and `%{…}` parts as written; the expression
 * parser wants source, so the literal parts are escaped again (a Logging filter such as
 * `jsonPayload.event="x"` has quotes in them).
 */
export function templateSource(v: string): string {
  let out = '';
  let i = 0;
  while (i < v.length) {
    if (v.startsWith('${', i) || v.startsWith('%{', i)) {
      const end = interpolationEnd(v, i + 2);
      out += v.slice(i, end);
      i = end;
      continue;
    }
    const c = v.charAt(i);
    out += c === '"' ? '\\"' : c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c;
    i++;
  }
  return out;
}

/**
 * A value back as HCL source, for a module of Terraform's own to evaluate: a string that is one
 * interpolation as its expression (`${local.x}` → `local.x`, which keeps its type), any other
 * string as a quoted template, a map or list item by item, anything else as written.
 */
export function expressionSource(v: Json | undefined): string {
  if (v === undefined || v === null) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(expressionSource).join(', ')}]`;
  if (typeof v === 'object') {
    const items = Object.entries(v).map(
      ([k, x]) => `${JSON.stringify(k)} = ${expressionSource(x)}`,
    );
    return `{\n${items.join('\n')}\n}`;
  }
  if (v.startsWith('${') && interpolationEnd(v, 2) === v.length) return v.slice(2, -1);
  return `"${templateSource(v)}"`;
}

/** Index after the `}` that closes an interpolation whose body starts at `i`. */
function interpolationEnd(v: string, i: number): number {
  let depth = 1;
  while (i < v.length) {
    const c = v.charAt(i);
    if (c === '"') {
      i = quotedEnd(v, i + 1);
      continue;
    }
    if (c === '{') depth++;
    if (c === '}' && --depth === 0) return i + 1;
    i++;
  }
  return v.length;
}

/** Index after the `"` that closes a quoted string (inside an interpolation) starting at `i`. */
function quotedEnd(v: string, i: number): number {
  while (i < v.length) {
    if (v.charAt(i) === '\\') i += 2;
    else if (v.charAt(i) === '"') return i + 1;
    else if (v.startsWith('${', i)) i = interpolationEnd(v, i + 2);
    else i++;
  }
  return v.length;
}

/**
 * What a value refers to, as hcl2json's own parser reads it: `var.pipeline.log_level`,
 * `google_storage_bucket.output.name`, … (index steps end a reference). Literals refer to nothing.
 */
export async function refs(v: Json | undefined): Promise<string[]> {
  if (typeof v === 'string') {
    if (!v.includes('${')) return [];
    let found = referenceCache.get(v);
    if (!found) {
      found = getReferencesInExpression('module.tf', templateSource(v)).then((r) =>
        r.map((x) => x.value),
      );
      referenceCache.set(v, found);
    }
    return found;
  }
  if (Array.isArray(v)) return (await Promise.all(v.map(refs))).flat();
  if (isObject(v)) return (await Promise.all(Object.values(v).map(refs))).flat();
  return [];
}

/**
 * The declaration a reference needs: `var.x`, `local.x`, `data.t.n`, or a resource `t.n` (its type
 * named after this module's providers); undefined for `each.value`, `path.module`, `dynamic`
 * iterators and the like.
 */
export function addressOf(ref: string): string | undefined {
  const [root, a, b] = ref.split('.');
  if (root === undefined || a === undefined) return undefined;
  if (root === 'var' || root === 'local') return `${root}.${a}`;
  if (root === 'data') return b === undefined ? undefined : `data.${a}.${b}`;
  return /^(google|archive)_/.test(root) ? `${root}.${a}` : undefined;
}

/** The declarations a value refers to. */
export async function addressesIn(v: Json | undefined): Promise<string[]> {
  return [...new Set((await refs(v)).map(addressOf).filter((a) => a !== undefined))];
}

const astCache = new Map<string, Promise<Ast | null>>();

/** The syntax tree of an expression's source (memoised: the checks ask for the same ones often). */
function expressionAst(source: string): Promise<Ast | null> {
  let ast = astCache.get(source);
  if (!ast) {
    ast = getExpressionAst('module.tf', source);
    astCache.set(source, ast);
  }
  return ast;
}

/** The syntax tree of a `${…}` expression (the whole string must be one interpolation). */
export async function astOf(v: Json | undefined): Promise<Ast | undefined> {
  if (typeof v !== 'string' || !v.startsWith('${') || !v.endsWith('}')) return undefined;
  return (await expressionAst(v.slice(2, -1))) ?? undefined;
}

/** The value of a literal written in HCL (`"512Mi"`, `540`, `[]`, `null`), parsed by hcl2json. */
export async function literal(source: string): Promise<Json> {
  const json = toJson(await parse('literal.tf', `locals {\n  v = ${source}\n}\n`));
  const body = isObject(json) && Array.isArray(json.locals) ? json.locals[0] : undefined;
  if (!isObject(body) || !('v' in body)) throw new Error(`not a literal: ${source}`);
  return body.v ?? null;
}

/** Source text of a node (hcl2json keeps each node's text in meta.value). */
function sourceOf(node: Ast | undefined): string | undefined {
  return node === undefined || !('meta' in node) ? undefined : node.meta.value;
}

// --- Object variables ----------------------------------------------------------------------------

export interface Attribute {
  /** Type expression, e.g. `string`, `list(string)`. */
  type: string;
  /** `optional(type, default)`: the default; `optional(type)`, or a required attribute: null. */
  default: Json;
}

/**
 * The attributes of an `object({…})` variable, with their optional() defaults, or undefined when
 * the variable is not an object.
 */
export async function objectAttributes(
  variable: JsonObject | undefined,
): Promise<Map<string, Attribute> | undefined> {
  const ast = await astOf(variable?.type);
  if (ast?.type !== 'function' || ast.meta.name !== 'object') return undefined;
  const object = ast.children.find((c) => c.type === 'object');
  if (object?.type !== 'object') return undefined;
  const attributes = new Map<string, Attribute>();
  for (const [name, source] of Object.entries(object.meta.items)) {
    const item = await expressionAst(source);
    const optional = item?.type === 'function' && item.meta.name === 'optional';
    const [type, fallback] = optional ? item.children : [];
    const fallbackSource = sourceOf(fallback);
    attributes.set(name, {
      type: sourceOf(type) ?? source,
      default: fallbackSource === undefined ? null : await literal(fallbackSource),
    });
  }
  return attributes;
}

/** The default of `var.x` or of `var.x.attr`; undefined when there is none to know. */
export async function defaultOf(m: TfModule, ref: string): Promise<Json | undefined> {
  const [root, name, attr] = ref.split('.');
  if (root !== 'var' || name === undefined) return undefined;
  const variable = m.variable[name];
  if (attr === undefined) return variable?.default;
  return (await objectAttributes(variable))?.get(attr)?.default;
}

// --- The module's own names ----------------------------------------------------------------------

export interface FunctionInfo {
  address: string;
  body: JsonObject;
  entryPoint: string;
}

/** The Cloud Functions of the module, with their entry points. */
export function functionsOf(m: TfModule): FunctionInfo[] {
  return Object.entries(m.resource.google_cloudfunctions2_function ?? {}).map(([name, body]) => ({
    address: `google_cloudfunctions2_function.${name}`,
    body,
    entryPoint: str(block(body.build_config)?.entry_point),
  }));
}

export function functionFor(m: TfModule, entryPoint: string): FunctionInfo | undefined {
  return functionsOf(m).find((f) => f.entryPoint === entryPoint);
}

/** A function's environment_variables: a map, the one local map it names, or a merge of local maps. */
export async function environmentOf(
  m: TfModule,
  fn: FunctionInfo,
): Promise<JsonObject | undefined> {
  const raw = block(fn.body.service_config)?.environment_variables;
  if (isObject(raw)) return raw;
  const addresses = await addressesIn(raw);
  const maps = addresses.map((a) => {
    const local = /^local\.(.+)$/.exec(a)?.[1];
    return local === undefined ? undefined : m.locals[local];
  });
  if (!maps.every(isObject)) return undefined;
  // One local map, or `merge(local.a, local.b, …)` of local maps (later keys win, as in merge).
  if (maps.length === 1) return maps[0];
  const merged =
    typeof raw === 'string' && /^\$\{merge\((local\.\w+,\s*)*local\.\w+\)\}$/.test(raw);
  return merged ? (Object.assign({}, ...maps) as JsonObject) : undefined;
}

/** Every resource as [type, address, body]. */
export function allResources(m: TfModule): [string, string, JsonObject][] {
  return Object.entries(m.resource).flatMap(([type, named]) =>
    Object.entries(named).map(([n, b]): [string, string, JsonObject] => [type, `${type}.${n}`, b]),
  );
}

/** `what: missing x` / `what: unexpected y` between two lists. */
export function sameSet(what: string, actual: readonly string[], expected: readonly string[]) {
  const a = new Set(actual);
  const e = new Set(expected);
  return [
    ...[...e].filter((x) => !a.has(x)).map((x) => `${what}: missing ${x}`),
    ...[...a].filter((x) => !e.has(x)).map((x) => `${what}: unexpected ${x}`),
  ];
}

// --- Running checks --------------------------------------------------------------------------------

/** A mistake, the check that must catch it, and what its report must say. */
export interface Mutation<K extends string> {
  what: string;
  check: K;
  edit: Edit;
  report: RegExp;
}

/**
 * Each check must find no problem in the module, and each mutation must make its check report
 * the mistake: a check that cannot fail would prove nothing.
 */
export function describeChecks<K extends string>(
  title: string,
  checks: Record<K, Check>,
  mutations: Mutation<K>[],
): void {
  describe(title, () => {
    let model: TfModule;
    beforeAll(async () => {
      model = await loadModule();
    });

    it.each(Object.keys(checks) as K[])('%s: no problem in the module', async (name) => {
      expect(await checks[name](model)).toEqual([]);
    });

    it.each(mutations)('$check catches $what', async ({ check, edit, report }) => {
      const problems = await checks[check](await loadModule(edit));
      expect(problems.join('\n')).toMatch(report);
    });
  });
}
