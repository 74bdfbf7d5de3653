import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cmcdQueryValue, MAX_SESSION_ID_LENGTH, parseCmcdSessionId, sessionIdFromRequest } from '../src/cmcd.ts';

const SID = '6e2fb550-c457-11e9-bb97-0800200c9a66';

describe('CMCD session id', () => {
  it('reads sid from the query parameter as hls.js sends it (URL-encoded, quoted)', () => {
    const url = `/live/demo/r1-3.m4s?CMCD=bl%3D21300%2Cbr%3D3200%2Csid%3D%22${SID}%22`;
    assert.equal(sessionIdFromRequest(url, {}), SID);
  });

  it('handles form encoding (URLSearchParams: spaces as +) and other parameters around it', () => {
    const params = new URLSearchParams({ a: '1', CMCD: `bl=21300,cid="town hall",mtp=25400,ot=v,sf=h,sid="${SID}",su` });
    assert.equal(sessionIdFromRequest(`/live/demo/index.m3u8?${params.toString()}&z=2`, {}), SID);
    assert.equal(sessionIdFromRequest(`/live/demo/index.m3u8?x=1&CMCD=${encodeURIComponent(`sid="${SID}"`)}`, {}), SID);
  });

  it('reads the CMCD-Session header (header mode)', () => {
    assert.equal(sessionIdFromRequest('/live/demo/index.m3u8', { 'cmcd-session': `cid="demo",sid="${SID}"` }), SID);
    // The query wins when both are present; the header is the fallback.
    assert.equal(sessionIdFromRequest(`/x?CMCD=${encodeURIComponent('sid="from-query"')}`, { 'cmcd-session': 'sid="from-header"' }), 'from-query');
    assert.equal(sessionIdFromRequest(`/x?CMCD=${encodeURIComponent('br=1')}`, { 'cmcd-session': 'sid="from-header"' }), 'from-header');
  });

  it('unquotes escapes and keeps commas inside quoted values', () => {
    assert.equal(parseCmcdSessionId('cid="a,b=c",sid="x\\"y\\\\z"'), 'x"y\\z');
    assert.equal(parseCmcdSessionId('su,bs,sid="s1",br=3'), 's1');
  });

  it('returns null for anything that is not a sane session id', () => {
    const cases = [
      '', 'br=3200', 'sid=unquoted', 'sid="unterminated', 'sid=""', `sid="${'a'.repeat(MAX_SESSION_ID_LENGTH + 1)}"`,
      'sid="tab\there"', 'sid="caf\u00e9"', 'sid="nul\u0000"',
    ];
    for (const payload of cases) assert.equal(parseCmcdSessionId(payload), null, JSON.stringify(payload));
    assert.equal(parseCmcdSessionId(`sid="${'a'.repeat(MAX_SESSION_ID_LENGTH)}"`), 'a'.repeat(MAX_SESSION_ID_LENGTH));
    assert.equal(sessionIdFromRequest('/live/demo/index.m3u8', {}), null);
    assert.equal(sessionIdFromRequest('/live/demo/index.m3u8?CMCD=%E0%A4%A', {}), null, 'malformed percent-escape');
    assert.equal(sessionIdFromRequest(`/x?CMCD=${encodeURIComponent(`sid="${'b'.repeat(10_000)}"`)}`, {}), null, 'huge payload');
    assert.equal(sessionIdFromRequest('/x?NOTCMCD=sid%3D%22a%22', {}), null);
  });

  it('cmcdQueryValue takes the first CMCD parameter only', () => {
    assert.equal(cmcdQueryValue('/x?CMCD=a%3D1&CMCD=b%3D2'), 'a=1');
    assert.equal(cmcdQueryValue('/x'), null);
  });
});
