/** Entry point: load config.json, then connect MQTT and load campaigns and active calls. */
import { $, toast } from './dom.js';
import { state } from './state.js';
import { showTab } from './tabs.js';
import { connectMqtt, setConn } from './mqtt.js';
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
      connectMqtt();
      loadCampaigns().then(loadActiveCalls);
      setInterval(tickDurations, 1000);
      setInterval(function () {
        loadCampaigns();
      }, 30000);
      // a token was entered (reads need it too): load what was refused
      window.addEventListener('aidialer-token', function () {
        loadCampaigns().then(loadActiveCalls);
      });
      setInterval(checkStalled, 10000);
    },
    function (err) {
      setConn('error', 'no config');
      toast('Cannot load the dashboard configuration: ' + err.message, 'error');
    },
  );
window.aiDialerDashboard = state; // for debugging from the console
