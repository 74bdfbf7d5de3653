/**
 * k6 cannot be installed here, so the k6 script is checked statically: every file it loads parses
 * as ES2017 modules (what k6 0.48 accepts in files with import/export), it imports only k6
 * modules and our own plain-JS model, and its thresholds name metrics it defines.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as acorn from 'acorn';
import { REPO_ROOT } from '../../common/testing/processes.ts';

const K6_DIR = path.join(REPO_ROOT, 'loadtest', 'k6');
const K6_MODULES = new Set(['k6', 'k6/http', 'k6/metrics', 'k6/execution', 'k6/data', 'k6/encoding', 'k6/crypto', 'k6/timers']);

function parseEs2017(file: string): acorn.Program {
  return acorn.parse(readFileSync(file, 'utf8'), { ecmaVersion: 2017, sourceType: 'module', locations: true });
}

/** The k6 script and every file it imports, transitively. */
function loadedFiles(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const node of parseEs2017(file).body) {
      if (node.type !== 'ImportDeclaration') continue;
      const source = String(node.source.value);
      if (K6_MODULES.has(source)) continue;
      assert.ok(source.startsWith('./') || source.startsWith('../'), `${path.relative(REPO_ROOT, file)} imports "${source}": only k6 modules and relative files load in k6`);
      const target = path.resolve(path.dirname(file), source);
      assert.ok(existsSync(target), `${source} (from ${path.relative(REPO_ROOT, file)}) exists`);
      visit(target);
    }
  };
  visit(entry);
  return [...seen];
}

describe('the k6 script', () => {
  const scripts = readdirSync(K6_DIR).filter((n) => n.endsWith('.js')).map((n) => path.join(K6_DIR, n));

  it('exists, and the ES2017 check rejects newer syntax (so it can fail)', () => {
    assert.ok(scripts.length > 0);
    for (const newer of ['const a = b?.c;', 'const a = b ?? c;', 'const a = { ...b };', 'for await (const x of y) {}', 'try {} catch {}']) {
      assert.throws(() => acorn.parse(newer, { ecmaVersion: 2017, sourceType: 'module' }), SyntaxError, newer);
    }
  });

  it('and every file it loads parse as ES2017 modules with only k6 and relative imports', () => {
    for (const script of scripts) {
      const files = loadedFiles(script);
      assert.ok(files.some((f) => f.endsWith(path.join('lib', 'viewer.js'))), 'it runs the shared viewer model');
      for (const file of files) assert.doesNotThrow(() => parseEs2017(file), `${path.relative(REPO_ROOT, file)} is ES2017`);
    }
  });

  it('has thresholds only on metrics it defines, and the three SLO thresholds', () => {
    const source = readFileSync(path.join(K6_DIR, 'hls-viewers.js'), 'utf8');
    const defined = new Set([...source.matchAll(/new (?:Trend|Counter|Rate|Gauge)\('([a-z0-9_]+)'/g)].map((m) => m[1]));
    const thresholdBlock = /thresholds:\s*\{([\s\S]*?)\n\s*\},/.exec(source)?.[1] ?? '';
    const keys = [...thresholdBlock.matchAll(/^\s*([a-z0-9_]+):/gm)].map((m) => m[1]);
    assert.deepEqual(keys.sort(), ['hls_request_failed', 'hls_segment_download_ratio', 'hls_stalls']);
    for (const key of keys) assert.ok(defined.has(key), `${key} is defined`);
  });
});
