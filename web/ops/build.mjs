// Builds the ops map into the Python package (dispatch/entrypoints/static/ops/):
// content-hashed assets, index.html naming them, and manifest.json with a hash of every
// source so a unit test can tell when the bundle is older than its sources.
// Run it through scripts/build-ops (or `npm run build` here).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../../dispatch/entrypoints/static/ops');
const assetsDir = path.join(outDir, 'assets');

// Keep in step with SOURCES in tests/unit/dispatch/test_ops_bundle.py.
function sourceFiles() {
  const src = fs.readdirSync(path.join(here, 'src')).map((name) => `src/${name}`);
  return ['build.mjs', 'index.html', 'package-lock.json', 'package.json', ...src].sort();
}

// sha256 over "<path>\0<bytes>\0" for each source, in sorted path order.
function sourcesHash() {
  const hash = createHash('sha256');
  for (const rel of sourceFiles()) {
    hash.update(`${rel}\0`);
    hash.update(fs.readFileSync(path.join(here, rel)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

// MapLibre runs its tiles in a module worker it loads by URL: ship it as an asset of its
// own, content-hashed like the bundle, and tell the page its name.
const worker = fs.readFileSync(path.join(here, 'node_modules/maplibre-gl/dist/maplibre-gl-worker.mjs'));
const workerName = `maplibre-worker-${createHash('sha256').update(worker).digest('hex').slice(0, 8)}.mjs`;

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { ops: 'src/main.js' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  entryNames: '[name]-[hash]',
  outdir: assetsDir,
  write: false,
  legalComments: 'eof',
  define: { MAPLIBRE_WORKER_URL: JSON.stringify(`/ops/assets/${workerName}`) },
  logLevel: 'warning',
});

fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(assetsDir, { recursive: true });
const names = {};
for (const file of result.outputFiles) {
  fs.writeFileSync(file.path, file.contents);
  names[path.extname(file.path).slice(1)] = path.basename(file.path);
}
fs.writeFileSync(path.join(assetsDir, workerName), worker);
const html = fs
  .readFileSync(path.join(here, 'index.html'), 'utf8')
  .replace('%CSS%', names.css)
  .replace('%JS%', names.js);
fs.writeFileSync(path.join(outDir, 'index.html'), html);
const manifest = { sources_sha256: sourcesHash(), assets: [...Object.values(names), workerName].sort() };
// A gzip copy beside each asset: the service sends it to browsers that accept gzip.
for (const name of manifest.assets) {
  const file = path.join(assetsDir, name);
  fs.writeFileSync(`${file}.gz`, gzipSync(fs.readFileSync(file), { level: 9 }));
}
fs.writeFileSync(path.join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
for (const name of manifest.assets) {
  const kib = (file) => (fs.statSync(path.join(assetsDir, file)).size / 1024).toFixed(0);
  console.log(`ops map: ${name} ${kib(name)} KiB (gzip ${kib(`${name}.gz`)} KiB)`);
}
