// The workflow modules are preloaded (workers/worker.ts prebuildWorkflowBundle): evaluated once per
// worker and shared by every workflow it runs. State at module scope would then leak between
// workflows — a nondeterminism no replay test would see. This checks the bundle every worker runs
// (the test run's, tests/global-setup.mjs) preloads them, and that none of our modules in it
// declares mutable state at module scope.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { prebuildWorkflowBundle } from '../../workers/worker';

const root = path.join(__dirname, '../..');

async function bundleCode(): Promise<string> {
  const file = process.env.TEST_WORKFLOW_BUNDLE;
  return file ? readFileSync(file, 'utf8') : (await prebuildWorkflowBundle()).code;
}

/** Our source files in the bundle (webpack's module ids are paths from the project root). */
function ourModules(code: string): string[] {
  const ids = [...code.matchAll(/^\/\*\*\*\/ "(\.\/[^"]+)"$/gm)].map((m) => m[1]);
  return [...new Set(ids.filter((id) => !id.startsWith('./node_modules/') && /\.ts$/.test(id)))];
}

const MUTABLE_CONTAINERS = /^new (Map|Set|WeakMap|WeakSet|Array)\b/;

/** Module-scope declarations that hold state: `let`/`var`, or a const Map/Set/array to fill. */
function moduleStateIn(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  for (const statement of source.statements) {
    if (!ts.isVariableStatement(statement)) continue;
    const list = statement.declarationList;
    const isConst = (list.flags & ts.NodeFlags.Const) !== 0;
    for (const d of list.declarations) {
      const init = d.initializer?.getText(source) ?? '';
      if (!isConst || MUTABLE_CONTAINERS.test(init) || (d.initializer && ts.isArrayLiteralExpression(d.initializer) && d.initializer.elements.length === 0)) {
        const { line } = source.getLineAndCharacterOfPosition(d.getStart(source));
        found.push(`${fileName}:${line + 1}: ${d.getText(source).slice(0, 80)}`);
      }
    }
  }
  return found;
}

describe('workflow modules shared by every workflow of a worker', () => {
  let code: string;
  beforeAll(async () => {
    code = await bundleCode();
  }, 60_000);

  it('are preloaded by the bundle the workers run', () => {
    const preload = code.match(/exports\.preloadModules = function preloadModules\(\) \{([^}]*)\}/);
    expect(preload).not.toBeNull();
    expect(preload![1]).toMatch(/__webpack_require__\([^)]*"\.\/workflows\/index\.ts"\)/);
  });

  it('declare no mutable state at module scope', () => {
    const modules = ourModules(code);
    // The scenarios' workflows and the shared workflow helpers are all in it.
    expect(modules).toEqual(expect.arrayContaining(['./scenarios/jit/workflow.ts', './scenarios/leak/workflow.ts', './workflows/index.ts']));
    const found = modules.flatMap((id) => moduleStateIn(id, readFileSync(path.join(root, id), 'utf8')));
    expect(found).toEqual([]);
  });

  it('the check finds module state when there is some', () => {
    const text = ['let count = 0;', 'var seen;', 'const cache = new Map<string, number>();', 'const queue: string[] = [];', 'const fastCall = { retry: 3 };', 'export function f() { let local = 1; return local; }'].join('\n');
    expect(moduleStateIn('x.ts', text).map((f) => f.slice(f.indexOf(': ') + 2))).toEqual(['count = 0', 'seen', 'cache = new Map<string, number>()', 'queue: string[] = []']);
  });
});
