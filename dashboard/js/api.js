/** The HTTP API (config.apiBase): api() resolves {ok, status, data} and never throws for HTTP errors; the API token prompt. */
import { $, toast } from './dom.js';
import { state } from './state.js';

export function apiUrl(path) {
  return state.config.apiBase.replace(/\/+$/, '') + path;
}

/** Call the API. Resolves {ok, status, data}; never throws for HTTP errors. */
export function api(method, path, body) {
  var headers = {};
  var token = apiToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  var init = { method: method, headers: headers };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return fetch(apiUrl(path), init).then(
    function (r) {
      return r.text().then(function (text) {
        var data;
        try {
          data = text ? JSON.parse(text) : null;
        } catch (e) {
          data = { error: text || r.statusText };
        }
        if (r.status === 401 || (r.status === 403 && method !== 'GET')) askToken();
        return { ok: r.ok, status: r.status, data: data || {} };
      });
    },
    function (err) {
      return { ok: false, status: 0, data: { error: 'cannot reach the server: ' + err.message } };
    },
  );
}

/**
 * A binary resource of the API (a call recording) as an object URL, fetched with the same credential
 * (an <audio src> could not send it). Resolves {ok, status, url | error}.
 */
export function apiBlobUrl(path) {
  var headers = {};
  var token = apiToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  return fetch(apiUrl(path), { headers: headers }).then(
    function (r) {
      if (r.status === 401) askToken();
      if (!r.ok)
        return r.text().then(function (text) {
          var msg = r.statusText;
          try {
            msg = JSON.parse(text).error || msg;
          } catch (e) {
            /* not JSON */
          }
          return { ok: false, status: r.status, error: msg };
        });
      return r.blob().then(function (b) {
        return { ok: true, status: r.status, url: URL.createObjectURL(b) };
      });
    },
    function (err) {
      return { ok: false, status: 0, error: 'cannot reach the server: ' + err.message };
    },
  );
}

/**
 * The credential sent with every API call (reads carry personal data too): the token saved in this
 * browser, else, when the API accepts the Node-RED editor login, the editor's access token (same
 * origin, saved by the editor as "auth-tokens").
 */
export function apiToken() {
  var saved = localStorage.getItem('aiDialerToken');
  if (saved) return saved;
  if (state.config && state.config.hostLogin) {
    try {
      var t = JSON.parse(localStorage.getItem('auth-tokens') || 'null');
      if (t && t.access_token) return t.access_token;
    } catch (e) {
      /* no editor login */
    }
  }
  return '';
}

export function askToken() {
  var d = $('#token-dialog');
  if (d.open) return;
  $('#token-form').token.value = localStorage.getItem('aiDialerToken') || '';
  d.showModal();
}
$('#token-form').addEventListener('submit', function () {
  var v = $('#token-form').token.value.trim();
  if (v) localStorage.setItem('aiDialerToken', v);
  else localStorage.removeItem('aiDialerToken');
  toast(v ? 'API token saved in this browser' : 'API token removed', 'ok');
  if (v) window.dispatchEvent(new Event('aidialer-token')); // main.js reloads the lists
});
$('#token-btn').addEventListener('click', askToken);
