/**
 * Source of deploy/kibana/onair-viewers.ndjson (Kibana saved objects: a data view, a saved
 * search, five aggregation-based visualizations and the "onair viewers" dashboard).
 *
 *   node --import tsx deploy/kibana/saved-objects.ts > deploy/kibana/onair-viewers.ndjson
 *
 * e2e/docker-compose.test.ts checks that the .ndjson file is exactly this output.
 *
 * Format: the saved-objects export format as Kibana 8.x writes it (objects written by 8.x import
 * into 8.x and 9.x: "the same version, a newer minor on the same major, or the next major"), each
 * object with the `coreMigrationVersion`/`typeMigrationVersion` of the export it is modelled on,
 * so Kibana migrates it forward on import. Shapes were taken from:
 * - real 8.x exports: index-pattern (typeMigrationVersion 8.0.0), visualization (8.5.0: pie and
 *   histogram visState, searchSourceJSON with indexRefName), dashboard (8.9.0: panelsJSON with
 *   panelRefName, references named `<panelIndex>:panel_<panelIndex>`), search (10.5.0);
 * - Kibana's source: the visualization attribute schema (title, description, version,
 *   kibanaSavedObjectMeta.searchSourceJSON, uiStateJSON, visState), the dashboard attribute
 *   schema (timeRestore/timeFrom/timeTo/refreshInterval, panelsJSON, optionsJSON; unknown keys
 *   forbidden), the line/area vis type defaults and schemas (metric, segment, group), and the
 *   `filters` bucket agg params ({input: {query, language}, label}).
 * Not verified here (no Kibana on our machines): an actual import into 9.x, and how the
 * `scaleMetricValues` option renders ("per second" panels).
 */

/** The data stream monitoring provisions (monitoring/src/store/elasticsearch-store.ts). */
export const DATA_VIEW_ID = 'onair-access';
export const DATA_VIEW_TITLE = 'onair-access*';
export const DASHBOARD_ID = 'onair-viewers';

/**
 * DESIGN.md: viewers are counted from the proxy tier, playlist and segment requests only; requests
 * the proxy refused (network, token, limits) are not viewers (monitoring/src/store/access-store.ts).
 */
const VIEWER_QUERY = 'tier : "proxy" and kind : ("playlist" or "segment") and not refusal : * and not status : (401 or 403 or 429)';
const PROXY_QUERY = 'tier : "proxy"';

interface Reference { id: string; name: string; type: string }
export interface SavedObject {
  attributes: Record<string, unknown>;
  coreMigrationVersion: string;
  id: string;
  managed: boolean;
  references: Reference[];
  type: string;
  typeMigrationVersion: string;
}

const INDEX_REF = 'kibanaSavedObjectMeta.searchSourceJSON.index';

function searchSource(query: string): string {
  return JSON.stringify({ query: { query, language: 'kuery' }, filter: [], indexRefName: INDEX_REF });
}

function dataViewRef(): Reference {
  return { id: DATA_VIEW_ID, name: INDEX_REF, type: 'index-pattern' };
}

type Agg = { id: string; enabled: true; type: string; params: Record<string, unknown>; schema: string };

function dateHistogram(id: string, interval: string, scaleMetricValues: boolean): Agg {
  return {
    id,
    enabled: true,
    type: 'date_histogram',
    params: {
      field: '@timestamp',
      useNormalizedEsInterval: true,
      scaleMetricValues,
      interval,
      drop_partials: false,
      min_doc_count: 1,
      extended_bounds: {},
    },
    schema: 'segment',
  };
}

function terms(id: string, field: string, size: number, schema = 'group'): Agg {
  return {
    id,
    enabled: true,
    type: 'terms',
    params: {
      field,
      orderBy: '1',
      order: 'desc',
      size,
      otherBucket: true,
      otherBucketLabel: 'Other',
      missingBucket: false,
      missingBucketLabel: 'Missing',
    },
    schema,
  };
}

/** Params of the line/area vis types (their visConfig defaults in Kibana), one series on one axis. */
function xyParams(type: 'line' | 'area', seriesLabel: string, axisTitle: string, opts: { stacked?: boolean; percentage?: boolean } = {}) {
  return {
    type,
    grid: { categoryLines: false },
    categoryAxes: [
      {
        id: 'CategoryAxis-1',
        type: 'category',
        position: 'bottom',
        show: true,
        scale: { type: 'linear' },
        labels: { show: true, filter: true, truncate: 100 },
        title: {},
        style: {},
      },
    ],
    valueAxes: [
      {
        id: 'ValueAxis-1',
        name: 'LeftAxis-1',
        type: 'value',
        position: 'left',
        show: true,
        scale: { type: 'linear', mode: opts.percentage ? 'percentage' : 'normal' },
        labels: { show: true, rotate: 0, filter: true, truncate: 100 },
        title: { text: axisTitle },
        style: {},
      },
    ],
    seriesParams: [
      {
        show: true,
        type,
        mode: opts.stacked ? 'stacked' : 'normal',
        data: { label: seriesLabel, id: '1' },
        valueAxis: 'ValueAxis-1',
        drawLinesBetweenPoints: true,
        lineWidth: 2,
        interpolate: 'linear',
        showCircles: true,
        circlesRadius: 1,
      },
    ],
    addTooltip: true,
    detailedTooltip: true,
    palette: { type: 'palette', name: 'default' },
    addLegend: true,
    legendPosition: 'right',
    fittingFunction: 'linear',
    times: [],
    addTimeMarker: false,
    truncateLegend: true,
    maxLegendLines: 1,
    radiusRatio: 9,
    thresholdLine: { show: false, value: 10, width: 1, style: 'full', color: '#E7664C' },
    labels: {},
  };
}

function visualization(id: string, title: string, description: string, query: string, visState: { type: string; aggs: Agg[]; params: unknown }): SavedObject {
  return {
    attributes: {
      description,
      kibanaSavedObjectMeta: { searchSourceJSON: searchSource(query) },
      title,
      uiStateJSON: '{}',
      version: 1,
      visState: JSON.stringify({ title, ...visState }),
    },
    coreMigrationVersion: '8.8.0',
    id,
    managed: false,
    references: [dataViewRef()],
    type: 'visualization',
    typeMigrationVersion: '8.5.0',
  };
}

export function buildSavedObjects(): SavedObject[] {
  const dataView: SavedObject = {
    attributes: {
      allowHidden: false,
      fieldAttrs: '{}',
      fieldFormatMap: JSON.stringify({ bytes: { id: 'bytes' } }),
      fields: '[]',
      name: 'onair access records',
      runtimeFieldMap: '{}',
      sourceFilters: '[]',
      timeFieldName: '@timestamp',
      title: DATA_VIEW_TITLE,
    },
    coreMigrationVersion: '8.8.0',
    id: DATA_VIEW_ID,
    managed: false,
    references: [],
    type: 'index-pattern',
    typeMigrationVersion: '8.0.0',
  };

  const search: SavedObject = {
    attributes: {
      columns: ['stream', 'kind', 'client_ip', 'session_id', 'status', 'bytes', 'backend', 'path'],
      description: 'Access records of the proxy tier (the one viewers are counted from), newest first.',
      grid: {},
      hideChart: false,
      isTextBasedQuery: false,
      kibanaSavedObjectMeta: { searchSourceJSON: searchSource(PROXY_QUERY) },
      sort: [['@timestamp', 'desc']],
      timeRestore: false,
      title: 'onair access records (proxy)',
    },
    coreMigrationVersion: '8.8.0',
    id: 'onair-access-proxy-records',
    managed: false,
    references: [dataViewRef()],
    type: 'search',
    typeMigrationVersion: '10.5.0',
  };

  const viewers = visualization(
    'onair-viewers-by-stream',
    'Unique viewers per stream (distinct client IPs)',
    'Distinct client_ip per time bucket and stream, from proxy playlist/segment requests (DESIGN.md). ' +
      "Kibana's unique count is approximate and per bucket; the exact sliding-window count is on /monitor.",
    VIEWER_QUERY,
    {
      type: 'line',
      aggs: [
        { id: '1', enabled: true, type: 'cardinality', params: { field: 'client_ip' }, schema: 'metric' },
        dateHistogram('2', 'auto', false),
        terms('3', 'stream', 20),
      ],
      params: xyParams('line', 'Unique viewers (IPs)', 'Unique viewers (IPs)'),
    },
  );

  const requests = visualization(
    'onair-requests-per-second',
    'Requests per second (proxy)',
    'Requests served by the proxy, per stream, scaled to one second.',
    PROXY_QUERY,
    {
      type: 'line',
      aggs: [
        { id: '1', enabled: true, type: 'count', params: {}, schema: 'metric' },
        dateHistogram('2', 's', true),
        terms('3', 'stream', 10),
      ],
      params: xyParams('line', 'Requests/s', 'Requests/s'),
    },
  );

  const egress = visualization(
    'onair-egress-bytes',
    'Egress bytes per second (proxy)',
    'Response body bytes sent by the proxy, per stream, scaled to one second.',
    PROXY_QUERY,
    {
      type: 'area',
      aggs: [
        { id: '1', enabled: true, type: 'sum', params: { field: 'bytes' }, schema: 'metric' },
        dateHistogram('2', 's', true),
        terms('3', 'stream', 10),
      ],
      params: xyParams('area', 'Bytes/s', 'Bytes/s', { stacked: true }),
    },
  );

  const errors = visualization(
    'onair-error-rate',
    'Error rate (share of proxy responses by status class)',
    'Share of proxy responses that are 5xx, 4xx or successful, per time bucket (stacked to 100%).',
    PROXY_QUERY,
    {
      type: 'area',
      aggs: [
        { id: '1', enabled: true, type: 'count', params: {}, schema: 'metric' },
        dateHistogram('2', 'auto', false),
        {
          id: '3',
          enabled: true,
          type: 'filters',
          params: {
            filters: [
              { input: { query: 'status >= 500', language: 'kuery' }, label: '5xx' },
              { input: { query: 'status >= 400 and status < 500', language: 'kuery' }, label: '4xx' },
              { input: { query: 'status < 400', language: 'kuery' }, label: '1xx-3xx' },
            ],
          },
          schema: 'group',
        },
      ],
      params: xyParams('area', 'Responses', 'Share of responses', { stacked: true, percentage: true }),
    },
  );

  const backends = visualization(
    'onair-backend-share',
    'Per-backend share of proxied requests',
    'Which web replica served the requests the proxy forwarded.',
    `${PROXY_QUERY} and backend : *`,
    {
      type: 'pie',
      aggs: [
        { id: '1', enabled: true, type: 'count', params: {}, schema: 'metric' },
        terms('2', 'backend', 10, 'segment'),
      ],
      params: {
        type: 'pie',
        addTooltip: true,
        legendDisplay: 'show',
        legendPosition: 'right',
        nestedLegend: false,
        truncateLegend: true,
        maxLegendLines: 1,
        distinctColors: false,
        isDonut: true,
        emptySizeRatio: 0.3,
        palette: { type: 'palette', name: 'default' },
        labels: { show: true, last_level: false, values: true, valuesFormat: 'percent', percentDecimals: 1, truncate: 100, position: 'default' },
      },
    },
  );

  // Dashboard: 48 columns wide. Panels reference saved objects by panelRefName.
  const layout: Array<{ object: SavedObject; x: number; y: number; w: number; h: number; title: string }> = [
    { object: viewers, x: 0, y: 0, w: 48, h: 15, title: 'Unique viewers per stream' },
    { object: requests, x: 0, y: 15, w: 24, h: 12, title: 'Requests/s' },
    { object: egress, x: 24, y: 15, w: 24, h: 12, title: 'Egress bytes/s' },
    { object: errors, x: 0, y: 27, w: 24, h: 12, title: 'Error rate' },
    { object: backends, x: 24, y: 27, w: 24, h: 12, title: 'Per-backend share' },
    { object: search, x: 0, y: 39, w: 48, h: 15, title: 'Access records (proxy)' },
  ];
  const panels = layout.map((p, i) => {
    const panelIndex = `p${i + 1}`;
    return {
      type: p.object.type,
      gridData: { x: p.x, y: p.y, w: p.w, h: p.h, i: panelIndex },
      panelIndex,
      embeddableConfig: { enhancements: {} },
      title: p.title,
      panelRefName: `panel_${panelIndex}`,
    };
  });
  const dashboard: SavedObject = {
    attributes: {
      description: 'onair live delivery: viewers (proxy tier, distinct IPs), traffic, errors, backend share.',
      kibanaSavedObjectMeta: { searchSourceJSON: JSON.stringify({ query: { query: '', language: 'kuery' }, filter: [] }) },
      optionsJSON: JSON.stringify({ useMargins: true, syncColors: false, syncCursor: true, syncTooltips: false, hidePanelTitles: false }),
      panelsJSON: JSON.stringify(panels),
      refreshInterval: { pause: false, value: 10_000 },
      timeFrom: 'now-1h',
      timeRestore: true,
      timeTo: 'now',
      title: 'onair viewers',
      version: 1,
    },
    coreMigrationVersion: '8.8.0',
    id: DASHBOARD_ID,
    managed: false,
    references: layout.map((p, i) => ({ id: p.object.id, name: `p${i + 1}:panel_p${i + 1}`, type: p.object.type })),
    type: 'dashboard',
    typeMigrationVersion: '8.9.0',
  };

  return [dataView, search, viewers, requests, egress, errors, backends, dashboard];
}

export function toNdjson(objects: readonly SavedObject[]): string {
  return objects.map((o) => JSON.stringify(o)).join('\n') + '\n';
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(toNdjson(buildSavedObjects()));
}
