/** Entry point: load config.json, then connect the live feed (API WebSocket or MQTT) and load campaigns and active calls. */
import { $, toast } from './dom.js';
import { state } from './state.js';
import { showTab } from './tabs.js';
import { connectMqtt } from './mqtt.js';
import { connectLive } from './live.js';
import { setConn } from './conn.js';
import { tickDurations } from './calls.js';
import { loadActiveCalls, loadCampaigns } from './campaigns.js';
import { api } from './api.js';
import { onProgress, progressFromStatus } from './progress.js';

/** A runtime that died sends no more events: ask who holds the running campaigns (running / stalled). */
function checkStalled() {
  state.progress.forEach(function (p, id) {
    if (p.state !== 'running' && p.state !== 'stalled') return;
    api('GET', '/campaigns/' + id + '/status').then(function (s) {
      if (s.ok && (s.data.state === 'stalled') !== (p.state === 'stalled'))
        onProgress(id, progressFromStatus(s.data), false);
    });
  });
}

fetch('config.json')
  .then(function (r) {
    return r.json();
  })
  .then(
    function (cfg) {
      state.config = cfg;
      document.title = cfg.title;
      $('#title').textContent = cfg.title;
      $('#token-btn').hidden = !cfg.apiTokenRequired;
      showTab();
      if (cfg.live === 'mqtt') connectMqtt();
      else connectLive();
      loadCampaigns().then(loadActiveCalls);
      setInterval(tickDurations, 1000);
      setInterval(function () {
        loadCampaigns();
      }, 30000);
      // a token was entered (reads need it too): load what was refused
      window.addEventListener('aidialer-token', function () {
        loadCampaigns().then(loadActiveCalls);
        if (cfg.live !== 'mqtt') connectLive(); // the live feed takes the same token
      });
      setInterval(checkStalled, 10000);
    },
    function (err) {
      setConn(
        'error',
        'no config',
        'The dashboard could not load its configuration (' + err.message + '): is the server running? Reload the page.',
      );
      toast('Cannot load the dashboard configuration: ' + err.message, 'error');
    },
  );
window.aiDialerDashboard = state; // for debugging from the console
