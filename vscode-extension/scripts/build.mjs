// Builds the extension with esbuild:
//   dist/extension.js  the bundle VS Code loads (`vscode` stays external)
//   out/               every source and test file compiled one to one, for `node --test`
// `--bundle-only` builds just the bundle (vsce runs that before packaging).
import * as esbuild from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// fileURLToPath, not URL.pathname: that keeps %20 for spaces and gives /C:/... on Windows.
const root = fileURLToPath(new URL('..', import.meta.url));
const bundleOnly = process.argv.includes('--bundle-only');

function tsFiles(dir) {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath ?? e.path, e.name));
}

await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['src/extension.ts'],
  outfile: 'dist/extension.js',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['vscode'],
  minify: true,
  keepNames: true, // readable names in the stack traces users send
  logLevel: 'warning',
});

if (!bundleOnly) {
  rmSync(join(root, 'out'), { recursive: true, force: true });
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: [...tsFiles('src'), ...tsFiles('test')],
    outbase: '.',
    outdir: 'out',
    bundle: false,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: 'inline',
    logLevel: 'warning',
  });
}
