/** Entry point: load config.json, then connect MQTT and load campaigns and active calls. */
import { $, toast } from './dom.js';
import { state } from './state.js';
import { showTab } from './tabs.js';
import { connectMqtt, setConn } from './mqtt.js';
import { tickDurations } from './calls.js';
import { loadActiveCalls, loadCampaigns } from './campaigns.js';

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
    },
    function (err) {
      setConn('error', 'no config');
      toast('Cannot load the dashboard configuration: ' + err.message, 'error');
    },
  );
window.aiDialerDashboard = state; // for debugging from the console
