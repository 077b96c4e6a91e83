// Headless Chromium for the e2e scripts: Debian's binary (or $CHROMIUM) driven by playwright-core
// from .test-deps (make test-deps), with the flags this machine's closed network needs.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const deps = process.env.TEST_DEPS_DIR || path.join(here, '..', '..', '..', '.test-deps');
const require = createRequire(path.join(deps, 'package.json'));
const { chromium } = require('playwright-core');

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
