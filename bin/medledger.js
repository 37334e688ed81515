#!/usr/bin/env node
// The CLI runs the compiled sources in dist/ (built by `npm ci` through the prepare script).
import '../dist/polyfill.js';
import { main } from '../dist/cli/main.js';

main(process.argv).catch((err) => {
  process.stderr.write(`medledger: ${err?.message ?? err}\n`);
  process.exit(2);
});
