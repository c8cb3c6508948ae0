/**
 * The process entry of `batch-courier` (package.json `bin`, through cli/batch-courier.mjs): runs
 * one command line against the real environment and exits with its code. Ctrl-C ends `watch`
 * cleanly; a second Ctrl-C exits at once.
 */
import { runCli } from './program.js';

let interrupt: () => void = () => undefined;
const interrupted = new Promise<void>((resolve) => (interrupt = resolve));
let interrupts = 0;
process.on('SIGINT', () => {
  interrupts++;
  if (interrupts > 1) process.exit(130);
  interrupt();
});

const code = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  clock: () => new Date(),
  interrupted,
  cwd: process.cwd(),
});
// The SDK clients keep connections open: exit once the output is flushed.
process.stdout.write('', () => process.exit(code));
