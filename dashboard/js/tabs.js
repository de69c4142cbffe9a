/** Theme switch and the Monitor / Campaigns tabs (location.hash). */
import { $, $$ } from './dom.js';

(function theme() {
  var saved = localStorage.getItem('aiDialerTheme');
  if (saved) document.documentElement.dataset.theme = saved;
  $('#theme-btn').addEventListener('click', function () {
    var cur =
      document.documentElement.dataset.theme ||
      (window.matchMedia && window.matchMedia('(prefers-color-scheme: light)').matches ? 'light' : 'dark');
    var next = cur === 'light' ? 'dark' : 'light';
    document.documentElement.dataset.theme = next;
    localStorage.setItem('aiDialerTheme', next);
  });
})();

export function showTab() {
  var name = (location.hash || '#monitor').slice(1).split('/')[0];
  if (name !== 'campaigns') name = 'monitor';
  $$('.tab').forEach(function (t) {
    t.classList.toggle('active', t.dataset.tab === name);
  });
  $('#tab-monitor').hidden = name !== 'monitor';
  $('#tab-campaigns').hidden = name !== 'campaigns';
}
window.addEventListener('hashchange', showTab);
