/**
 * Live data over MQTT over WebSocket (config.live 'mqtt': an external broker named by MQTT_WS_URL) with
 * mqtt.min.js (served by the runtime, loaded only in this mode) and the topic routing.
 */
import { $ } from './dom.js';
import { state } from './state.js';
import { setConn } from './conn.js';
import { onCallEvent } from './calls.js';
import { onProgress, renderProgress } from './progress.js';

/** Load the MQTT browser client once. */
function loadMqtt() {
  if (typeof window.mqtt !== 'undefined') return Promise.resolve();
  return new Promise(function (resolve, reject) {
    var s = document.createElement('script');
    s.src = 'vendor/mqtt.min.js';
    s.onload = function () {
      resolve();
    };
    s.onerror = function () {
      reject(new Error('vendor/mqtt.min.js did not load'));
    };
    document.head.appendChild(s);
  });
}

export function mqttCreds() {
  var m = state.config.mqtt;
  if (!m.auth) return Promise.resolve({});
  var saved = sessionStorage.getItem('aiDialerMqtt');
  if (saved) {
    try {
      return Promise.resolve(JSON.parse(saved));
    } catch (e) {
      /* ask again */
    }
  }
  return new Promise(function (resolve) {
    var d = $('#login-dialog');
    var f = $('#login-form');
    if (m.username && !f.username.value) f.username.value = m.username;
    f.onsubmit = function () {
      var c = { username: f.username.value, password: f.password.value };
      sessionStorage.setItem('aiDialerMqtt', JSON.stringify(c));
      resolve(c);
    };
    d.showModal();
  });
}

export function connectMqtt() {
  // the login first (a dialog, in the order the page always asked), then the client script
  mqttCreds().then(function (creds) {
    loadMqtt().then(
      function () {
        startMqtt(creds);
      },
      function (err) {
        setConn(
          'error',
          'MQTT client missing',
          err.message + ': reload the page; if it persists, reinstall the package.',
        );
      },
    );
  });
}

function startMqtt(creds) {
  var m = state.config.mqtt;
  var url = m.url || (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + m.path;
  var unreachable =
    'Cannot reach the MQTT broker’s WebSocket at ' +
    url +
    ': is the broker running with a WebSocket listener there (MQTT_WS_URL), and does it allow this page’s origin (' +
    location.origin +
    ')? Retrying by itself.';
  var everConnected = false;
  setConn('connecting', 'connecting…');
  var opts = {
    clientId: 'ai-dialer-dash-' + Math.random().toString(16).slice(2, 10),
    reconnectPeriod: 2000,
    connectTimeout: 8000,
    clean: true,
    resubscribe: true,
  };
  if (creds.username) {
    opts.username = creds.username;
    opts.password = creds.password;
  }
  var client = window.mqtt.connect(url, opts);
  state.client = client;
  var root = m.topicRoot;
  client.on('connect', function () {
    everConnected = true;
    setConn('connected', 'live');
    client.subscribe([root + '/calls/+/events', root + '/campaigns/+/status'], { qos: 1 }, function (err) {
      if (err) setConn('error', 'subscribe refused');
    });
  });
  client.on('reconnect', function () {
    if ($('#conn').dataset.state !== 'error')
      setConn(
        'reconnecting',
        'reconnecting…',
        everConnected ? 'The live connection was lost; reconnecting.' : unreachable,
      );
  });
  client.on('offline', function () {
    setConn('offline', everConnected ? 'offline – retrying' : 'broker unreachable', unreachable);
  });
  client.on('close', function () {
    if ($('#conn').dataset.state === 'connected')
      setConn('reconnecting', 'reconnecting…', 'The live connection was lost; reconnecting.');
  });
  client.on('error', function (err) {
    var msg = String((err && err.message) || err);
    if (/not authori[sz]ed|bad user ?name or password/i.test(msg)) {
      setConn('error', 'login refused', 'The broker refused the read-only login: enter the MQTT_READER_USER account.');
      sessionStorage.removeItem('aiDialerMqtt');
      client.end(true);
      setTimeout(connectMqtt, 500);
    }
  });
  client.on('message', function (topic, payload) {
    onMessage(root, topic, payload);
  });
}

export function onMessage(root, topic, payload) {
  if (topic.indexOf(root + '/') !== 0) return;
  var parts = topic.slice(root.length + 1).split('/');
  if (parts.length !== 3) return;
  var text = typeof payload === 'string' ? payload : new TextDecoder().decode(payload);
  if (parts[0] === 'campaigns' && parts[2] === 'status') {
    if (!text) {
      state.progress.delete(Number(parts[1]));
      renderProgress();
      return;
    }
    var p;
    try {
      p = JSON.parse(text);
    } catch (e) {
      return;
    }
    if (!p || typeof p !== 'object') return;
    onProgress(Number(p.campaignId != null ? p.campaignId : parts[1]), p, true);
    return;
  }
  if (parts[0] === 'calls' && parts[2] === 'events') {
    var e;
    try {
      e = JSON.parse(text);
    } catch (err) {
      return;
    }
    if (!e || typeof e !== 'object') return;
    onCallEvent(String(e.callId != null ? e.callId : parts[1]), e);
  }
}
