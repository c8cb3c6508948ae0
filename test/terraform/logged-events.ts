/**
 * The log events the functions' code really logs, read from shared/ and functions/ with the
 * TypeScript parser: string literals in the event argument of a logger call (`log.info('x', …)`,
 * `log[level]('x', …)`, either branch of a conditional there), and in an argument a helper of the
 * same file declares as `LogEvent` (`failed(run, err, 'poll.job_failed', …)`). A name only listed
 * in shared/log-events.ts, or a string that merely looks like one (an event type of the completion
 * contract), does not count. Syntax only: a full type check of the sources takes seconds.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { ROOT } from './tf-module.js';

const SOURCE_DIRS = ['shared', 'functions'];
const LEVELS = new Set(['debug', 'info', 'warning', 'error']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(file);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [file] : [];
  });
}

/** String literals anywhere inside an expression (both branches of `a ? 'x' : 'y'`). */
function literalsIn(node: ts.Node, into: Set<string>): void {
  if (ts.isStringLiteralLike(node)) into.add(node.text);
  ts.forEachChild(node, (child) => literalsIn(child, into));
}

/** Positions of the parameters typed `LogEvent`, per function name declared in a file. */
function logEventParameters(source: ts.SourceFile): Map<string, number[]> {
  const found = new Map<string, number[]>();
  const record = (name: string, parameters: ts.NodeArray<ts.ParameterDeclaration>): void => {
    const positions = parameters.flatMap((p, i) =>
      p.type && ts.isTypeReferenceNode(p.type) && p.type.typeName.getText(source) === 'LogEvent'
        ? [i]
        : [],
    );
    if (positions.length > 0) found.set(name, positions);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionDeclaration(node) && node.name) record(node.name.text, node.parameters);
    if (
      ts.isVariableDeclaration(node) &&
      ts.isIdentifier(node.name) &&
      node.initializer &&
      (ts.isArrowFunction(node.initializer) || ts.isFunctionExpression(node.initializer))
    ) {
      record(node.name.text, node.initializer.parameters);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** True for `x.info(…)`, `x.log.error(…)`, `x.log[level](…)`. */
function isLoggerCall(call: ts.CallExpression): boolean {
  const callee = call.expression;
  if (ts.isPropertyAccessExpression(callee)) return LEVELS.has(callee.name.text);
  return ts.isElementAccessExpression(callee) && /\blog$/.test(callee.expression.getText());
}

/** Event names one source file logs (not checked against the catalogue: the caller compares). */
export function loggedEventsIn(file: string, text: string, found = new Set<string>()): Set<string> {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2023, true);
  const helpers = logEventParameters(source);
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node)) {
      const positions = isLoggerCall(node)
        ? [0]
        : ts.isIdentifier(node.expression)
          ? (helpers.get(node.expression.text) ?? [])
          : [];
      for (const i of positions) {
        const argument = node.arguments[i];
        if (argument) literalsIn(argument, found);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Event names the functions' code logs. */
export function loggedEvents(): Set<string> {
  const found = new Set<string>();
  for (const file of SOURCE_DIRS.flatMap((d) => sourceFiles(path.join(ROOT, d)))) {
    loggedEventsIn(file, readFileSync(file, 'utf8'), found);
  }
  return found;
}
