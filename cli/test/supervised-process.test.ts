import assert from 'node:assert/strict';
import { test } from 'node:test';
import { humanLogLine, redactSecrets } from '../src/supervised-process.ts';

test('stream secrets are redacted from child output', () => {
  assert.equal(
    redactSecrets('Error writing trailer of rtmp://127.0.0.1:1935/live/demo?key=S8BdZZ2H_at-Ros: Broken pipe'),
    'Error writing trailer of rtmp://127.0.0.1:1935/live/demo?key=***: Broken pipe',
  );
  assert.equal(redactSecrets('a=1&key=abc&b=2'), 'a=1&key=***&b=2');
  assert.equal(redactSecrets('no secret here'), 'no secret here');
});

test('warnings and errors of JSON logs are shown briefly; info is not', () => {
  assert.equal(humanLogLine('ingest', '{"level":"info","msg":"x"}'), null);
  assert.equal(
    humanLogLine('ingest', '{"level":"warn","time":"t","service":"ingest","pid":1,"msg":"publish refused","stream":"a","reason":"wrong-key"}'),
    '[ingest] WARN  publish refused  stream=a reason=wrong-key',
  );
  assert.equal(humanLogLine('demo', 'plain line'), '[demo] plain line');
});
