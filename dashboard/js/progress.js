/** Campaign progress: counters, bars and the campaign cards. */
import { $, append, clear, h, num } from './dom.js';
import { campaignName, state } from './state.js';
import { renderCampaignList, renderDetailProgress } from './campaigns.js';

// every contact in one bucket (the database's count, src/store/campaigns.ts): they add up to total
export var COUNTERS = [
  'completed',
  'failed',
  'no_answer',
  'busy',
  'machine',
  'dnc_skipped',
  'active',
  'dialing',
  'retrying',
  'queued',
];
export var COUNTER_LABEL = {
  completed: 'completed',
  failed: 'failed',
  no_answer: 'no answer',
  busy: 'busy',
  machine: 'machine',
  dnc_skipped: 'do-not-call',
  active: 'active',
  dialing: 'dialing',
  retrying: 'retry waiting',
  queued: 'queued',
};
export var COLORS = {
  completed: 'var(--ok)',
  failed: 'var(--bad)',
  no_answer: 'var(--warn)',
  busy: 'var(--orange)',
  machine: 'var(--warn)',
  dnc_skipped: 'var(--violet)',
  active: 'var(--accent-strong)',
  dialing: 'var(--cyan)',
};

export function onProgress(id, p, live) {
  if (!isFinite(id)) return;
  var prev = state.progress.get(id);
  // live data wins over the API snapshot, except the news that nobody runs the campaign any more
  if (!live && prev && prev.live && p.state !== 'stalled') return;
  var q = { live: !!live, state: p.state || null };
  COUNTERS.forEach(function (k) {
    q[k] = num(p[k]);
  });
  q.total =
    typeof p.total === 'number'
      ? p.total
      : COUNTERS.reduce(function (a, k) {
          return a + q[k];
        }, 0);
  q.percent = typeof p.percent === 'number' ? p.percent : 0;
  q.nextRetryAt = typeof p.nextRetryAt === 'string' ? p.nextRetryAt : null;
  state.progress.set(id, q);
  if (q.state && state.campaigns.has(id)) state.campaigns.get(id).status = q.state;
  renderProgress();
  if (state.selectedCampaign === id) renderDetailProgress();
  renderCampaignList();
}

/** Progress from the API's status summary (before any live message): the same database count as MQTT's. */
export function progressFromStatus(s) {
  var p = {};
  Object.keys(s.progress || {}).forEach(function (k) {
    p[k] = s.progress[k];
  });
  // `stalled`: running in the database, but no runtime holds its lease (GET .../status)
  p.state = s.state || (s.progress && s.progress.status) || s.status;
  return p;
}

export function progressBar(p) {
  var total = Math.max(1, p.total || 0);
  var segs = ['completed', 'failed', 'no_answer', 'busy', 'machine', 'dnc_skipped', 'active', 'dialing'].map(
    function (k) {
      var w = Math.min(100, (p[k] / total) * 100);
      return w > 0
        ? h('span', {
            class: 'seg-' + k,
            style: 'width:' + w.toFixed(2) + '%;background:' + COLORS[k],
            title: COUNTER_LABEL[k] + ': ' + p[k],
          })
        : null;
    },
  );
  return h(
    'div',
    {
      class: 'bar',
      role: 'progressbar',
      'aria-valuenow': String(p.percent),
      'aria-valuemin': '0',
      'aria-valuemax': '100',
    },
    segs,
  );
}

export function progressCounters(p) {
  return h(
    'div',
    { class: 'counters' },
    COUNTERS.map(function (k) {
      return h(
        'div',
        { class: 'counter c-' + k, dataset: { counter: k } },
        h('b', null, String(p[k])),
        COUNTER_LABEL[k],
      );
    }),
  );
}

export function renderProgress() {
  var box = clear($('#progress-list'));
  var ids = new Set(Array.from(state.campaigns.keys()).concat(Array.from(state.progress.keys())));
  var list = Array.from(ids)
    .sort(function (a, b) {
      var ra = state.campaigns.get(a),
        rb = state.campaigns.get(b);
      var run = function (c, id) {
        var s = (state.progress.get(id) || {}).state || (c && c.status);
        return s === 'running' ? 0 : s === 'paused' ? 1 : 2;
      };
      return run(ra, a) - run(rb, b) || b - a;
    })
    .slice(0, 12);
  if (!list.length) {
    append(
      box,
      h(
        'div',
        { class: 'empty' },
        'No campaigns yet. Create one in ',
        h('a', { href: '#campaigns' }, 'Campaigns'),
        '.',
      ),
    );
    return;
  }
  list.forEach(function (id) {
    var p = state.progress.get(id) || {
      total: 0,
      percent: 0,
      state: null,
      completed: 0,
      failed: 0,
      no_answer: 0,
      busy: 0,
      machine: 0,
      dnc_skipped: 0,
      active: 0,
      dialing: 0,
      retrying: 0,
      queued: 0,
    };
    var c = state.campaigns.get(id);
    var st = p.state || (c && c.status) || 'unknown';
    box.appendChild(
      h(
        'div',
        { class: 'progress-card', dataset: { campaignId: String(id) } },
        h(
          'div',
          { class: 'pc-head' },
          h(
            'div',
            { style: 'min-width:0' },
            h('div', { class: 'pc-name', title: campaignName(id) }, campaignName(id)),
            h('span', { class: 'muted small' }, (p.total || 0) + ' contacts' + (p.live ? '' : ' · snapshot')),
          ),
          h(
            'div',
            { style: 'display:flex;align-items:center;gap:10px' },
            h('span', { class: 'badge ' + st }, st),
            h('span', { class: 'pct' }, (p.percent || 0) + '%'),
          ),
        ),
        cardControl(st),
        progressBar(p),
        progressCounters(p),
        retryNote(p, st),
      ),
    );
  });
}

/**
 * The one control a first-time user looks for, on the campaign's card (the Campaigns tab has them all):
 * Start, or Pause while running, or Resume while paused. campaigns.js handles the click.
 */
export function cardControl(st) {
  var c =
    st === 'running'
      ? { action: 'pause', label: '❚❚ Pause', cls: 'small' }
      : st === 'paused'
        ? { action: 'resume', label: '↻ Resume', cls: 'small' }
        : { action: 'start', label: '▶ Start', cls: 'primary small' };
  return h(
    'div',
    { class: 'pc-control' },
    h('button', { type: 'button', class: c.cls, dataset: { cardAction: c.action } }, c.label),
  );
}

/** Retries waiting: said as such, with when the next one is due (not a percentage that looks stuck). */
export function retryNote(p, st) {
  if (!p.retrying) return null;
  var when = p.nextRetryAt ? new Date(p.nextRetryAt) : null;
  var text =
    p.retrying +
    (p.retrying === 1 ? ' contact waits' : ' contacts wait') +
    ' for a retry' +
    (when && !isNaN(when.getTime())
      ? ', next at ' + when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : '');
  if (st === 'running' && !p.active && !p.dialing && !p.queued) text += ' (nothing else to dial until then)';
  return h('div', { class: 'muted small retry-note', dataset: { retryNote: '' } }, text);
}
