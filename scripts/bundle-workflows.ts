// Write the workflow bundle every worker runs (workers/worker.ts prebuildWorkflowBundle) to a file:
//   node -r @swc-node/register scripts/bundle-workflows.ts <file>
// The test run builds its bundle this way (tests/global-setup.mjs), so the tests run what workers run.
import { writeFileSync } from 'node:fs';
import { prebuildWorkflowBundle } from '../workers/worker';

async function main() {
  const file = process.argv[2];
  if (!file) throw new Error('usage: bundle-workflows.ts <file>');
  writeFileSync(file, (await prebuildWorkflowBundle()).code);
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
