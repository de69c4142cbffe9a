/**
 * Live data over the API's own WebSocket (config.livePath, docs/reference/http-api.md#live-monitor-websocket):
 * subprotocol ai-dialer.v1, the API token as `bearer.<base64url>`; every message is one v1 event, the
 * same JSON as on MQTT. A browser is not told why a WebSocket was refused, so when one closes before it
 * opened the page asks the HTTP API (GET livePath with the same credential) and says why and what to do.
 */
import { $ } from './dom.js';
import { state } from './state.js';
import { setConn } from './conn.js';
import { onCallEvent } from './calls.js';
import { onProgress } from './progress.js';
import { apiToken, apiUrl, askToken } from './api.js';

var retryMs = 1000;
var timer = null;

function b64url(s) {
  var bin = '';
  new TextEncoder().encode(s).forEach(function (b) {
    bin += String.fromCharCode(b);
  });
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function liveUrl() {
  var u = new URL(state.config.livePath, location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

function retry(ms) {
  clearTimeout(timer);
  timer = setTimeout(connectLive, ms || retryMs);
  retryMs = Math.min(retryMs * 2, 15000);
}

export function connectLive() {
  clearTimeout(timer);
  if (state.client) state.client.close();
  var token = apiToken();
  var protocols = ['ai-dialer.v1'];
  if (token) protocols.push('bearer.' + b64url(token));
  var ws;
  try {
    ws = new WebSocket(liveUrl(), protocols);
  } catch (e) {
    setConn('error', 'no live feed', 'The browser cannot open ' + state.config.livePath + ': ' + e.message);
    return;
  }
  var opened = false;
  state.client = ws;
  if ($('#conn').dataset.state !== 'error') setConn('connecting', 'connecting…');
  ws.onopen = function () {
    opened = true;
    retryMs = 1000;
    setConn('connected', 'live');
  };
  ws.onmessage = function (m) {
    onLiveMessage(m.data);
  };
  ws.onclose = function (ev) {
    if (state.client !== ws) return; // replaced (a new token)
    state.client = null;
    if (opened) {
      var why =
        ev.code === 1001
          ? 'The server is stopping or restarting'
          : ev.code === 4001
            ? 'This page fell behind the live feed (slow network or a busy tab)'
            : 'The live connection was lost';
      setConn('reconnecting', 'reconnecting…', why + '; reconnecting by itself.');
      retry(1000);
      return;
    }
    diagnose().then(function (d) {
      if (state.client) return;
      setConn(d.state, d.text, d.hint);
      if (d.retryMs) retry(d.retryMs);
    });
  };
}

/** Why the WebSocket did not open, from the HTTP API's answer to the same credential. */
function diagnose() {
  var headers = {};
  var token = apiToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  var where = state.config.livePath;
  return fetch(apiUrl('/live'), { headers: headers, cache: 'no-store' }).then(
    function (r) {
      return r
        .json()
        .catch(function () {
          return {};
        })
        .then(function (body) {
          var err = (body && body.error) || r.statusText || 'HTTP ' + r.status;
          if (r.status === 401) {
            askToken();
            return {
              state: 'error',
              text: 'login needed',
              hint:
                'The live feed needs the API token (API_TOKEN or the read-only API_READ_TOKEN' +
                (state.config.hostLogin ? ', or a Node-RED editor login in this browser' : '') +
                '): enter it with the API token button.',
            };
          }
          if (r.status === 403) {
            if (/origin/i.test(err)) return { state: 'error', text: 'origin refused', hint: err + '.', retryMs: 30000 };
            askToken();
            return {
              state: 'error',
              text: 'token refused',
              hint:
                'The server refused the API token saved in this browser (' +
                err +
                '): enter the right one with the API token button.',
            };
          }
          if (r.status === 426)
            return {
              state: 'error',
              text: 'live feed blocked',
              hint:
                'The login is fine but the WebSocket at ' +
                where +
                ' was refused or did not get through. Behind a reverse proxy: forward WebSocket upgrades (Upgrade and Connection headers) and the Host or X-Forwarded-Host header; a page on another origin must be listed in API_ALLOWED_ORIGINS (this one is ' +
                location.origin +
                '). Retrying.',
              retryMs: 15000,
            };
          if (r.status === 404)
            return {
              state: 'error',
              text: 'no live feed',
              hint:
                'This server has no live monitor at ' +
                where +
                ' (an older node-red-contrib-ai-dialer?): update the package, or set MQTT_WS_URL to take live data from an MQTT broker. Retrying.',
              retryMs: 30000,
            };
          if (r.status === 503)
            return { state: 'offline', text: 'server busy', hint: err + '. Retrying.', retryMs: 5000 };
          return {
            state: 'offline',
            text: 'offline – retrying',
            hint: 'The live feed failed (HTTP ' + r.status + ': ' + err + '). Retrying.',
            retryMs: 5000,
          };
        });
    },
    function () {
      return {
        state: 'offline',
        text: 'server unreachable',
        hint:
          'Cannot reach the server at ' +
          location.host +
          ': is Node-RED (npm start) running and reachable from this browser? Retrying by itself.',
        retryMs: retryMs,
      };
    },
  );
}

export function onLiveMessage(text) {
  var e;
  try {
    e = JSON.parse(text);
  } catch (err) {
    return;
  }
  if (!e || typeof e !== 'object' || typeof e.type !== 'string') return;
  if (e.type === 'campaign_progress') onProgress(Number(e.campaignId), e, true);
  else if (e.callId != null) onCallEvent(String(e.callId), e);
}
