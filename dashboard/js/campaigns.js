/** Campaign management: list, detail, create, start/pause/stop, uploads (contacts, DNC) and caller IDs. */
import { $, $$, clear, h, toast } from './dom.js';
import { campaignName, state } from './state.js';
import { api } from './api.js';
import { ensureCall, renderCalls } from './calls.js';
import {
  onProgress,
  progressBar,
  progressCounters,
  progressFromStatus,
  renderProgress,
  retryNote,
} from './progress.js';

export function loadCampaigns() {
  return api('GET', '/campaigns').then(function (r) {
    if (!r.ok) {
      toast('Campaigns: ' + (r.data.error || r.status), 'error');
      return;
    }
    var seen = new Set();
    r.data.campaigns.forEach(function (c) {
      seen.add(c.id);
      var live = state.progress.get(c.id);
      if (live && live.live && live.state) c.status = live.state;
      state.campaigns.set(c.id, c);
    });
    Array.from(state.campaigns.keys()).forEach(function (id) {
      if (!seen.has(id)) state.campaigns.delete(id);
    });
    renderCampaignList();
    renderProgress();
    renderCalls();
    // Snapshot progress for campaigns without live status yet.
    r.data.campaigns.slice(0, 12).forEach(function (c) {
      var p = state.progress.get(c.id);
      if (p && p.live) return;
      api('GET', '/campaigns/' + c.id + '/status').then(function (s) {
        if (s.ok) onProgress(c.id, progressFromStatus(s.data), false);
      });
    });
  });
}

export function loadActiveCalls() {
  return api('GET', '/calls?status=active&limit=200').then(function (r) {
    if (!r.ok) return;
    r.data.calls.forEach(function (row) {
      var id = String(row.id);
      if (state.calls.has(id)) return;
      var c = ensureCall(id, { campaignId: row.campaign_id, phone: row.phone, contactName: row.contact_name });
      c.fresh = false;
      c.status = row.status;
      c.startedAt = Date.parse(row.created_at) || Date.now();
    });
    renderCalls();
  });
}

export function renderCampaignList() {
  var ul = clear($('#campaign-list'));
  var list = Array.from(state.campaigns.values()).sort(function (a, b) {
    return b.id - a.id;
  });
  if (!list.length) ul.appendChild(h('li', { class: 'muted' }, 'No campaigns yet.'));
  list.forEach(function (c) {
    ul.appendChild(
      h(
        'li',
        {
          class: state.selectedCampaign === c.id ? 'selected' : '',
          dataset: { campaignId: String(c.id) },
          onclick: function () {
            selectCampaign(c.id);
          },
        },
        h(
          'div',
          { style: 'min-width:0' },
          h('div', { class: 'cl-name' }, c.name),
          h('span', { class: 'muted small' }, '#' + c.id + ' · ' + (c.contacts_total || 0) + ' contacts'),
        ),
        h('span', { class: 'badge ' + c.status }, c.status),
      ),
    );
  });
}

/** Another campaign's upload results and half-typed inputs must not show under this one. */
export function resetCampaignForms() {
  clear($('#contacts-result'));
  clear($('#dnc-result'));
  $('#cid-error').hidden = true;
  ['#contacts-form', '#dnc-form', '#cid-form'].forEach(function (sel) {
    $(sel).reset();
  });
}

export function selectCampaign(id) {
  if (state.selectedCampaign !== id) resetCampaignForms();
  state.selectedCampaign = id;
  $('#create-form').hidden = true;
  renderCampaignList();
  return api('GET', '/campaigns/' + id).then(function (r) {
    if (!r.ok) {
      toast(r.data.error || 'cannot load campaign', 'error');
      return;
    }
    state.detail = r.data;
    renderDetail();
    api('GET', '/campaigns/' + id + '/status').then(function (s) {
      if (s.ok) onProgress(id, progressFromStatus(s.data), false);
    });
  });
}

export function renderDetail() {
  var d = state.detail;
  $('#campaign-none').hidden = !!d;
  $('#campaign-detail').hidden = !d;
  if (!d) return;
  $('#cd-name').textContent = d.name;
  $('#cd-sub').textContent =
    '#' +
    d.id +
    ' · ' +
    d.timezone +
    ' · calls ' +
    String(d.window_start).slice(0, 5) +
    '–' +
    String(d.window_end).slice(0, 5) +
    ' · ' +
    d.max_concurrent +
    ' at once · ' +
    d.calls_per_second +
    '/s · ' +
    d.contacts_total +
    ' contacts';
  var st = (state.progress.get(d.id) || {}).state || d.status;
  var badge = $('#cd-status');
  badge.className = 'badge ' + st;
  badge.textContent = st;
  renderDetailProgress();
  var ul = clear($('#cid-list'));
  if (!d.phone_numbers.length)
    ul.appendChild(h('li', { class: 'muted' }, 'No caller-ID numbers yet: add at least one before starting.'));
  d.phone_numbers.forEach(function (p) {
    ul.appendChild(
      h(
        'li',
        { class: p.active ? '' : 'inactive' },
        h('span', { class: 'phone' }, p.number),
        h('span', { class: 'muted' }, (p.label || '') + (p.active ? '' : ' (inactive)')),
      ),
    );
  });
  var dl = clear($('#cd-settings'));
  var rp = d.retry_policy || {};
  var rows = [
    ['Country', d.default_country],
    ['Attempts', 'up to ' + d.max_attempts],
    [
      'Retry',
      ['busy', 'no_answer', 'failed', 'machine']
        .map(function (k) {
          return k.replace('_', ' ') + ' ' + Math.round((rp[k] || 0) / 60) + ' min';
        })
        .join(', '),
    ],
    ['Caller ID', String(d.caller_id_strategy).replace(/_/g, ' ')],
    ['AMD', d.amd_enabled ? 'on' : 'off'],
  ];
  if (d.settings && d.settings.greeting) rows.push(['Greeting', d.settings.greeting]);
  if (d.settings && d.settings.prompt) rows.push(['Prompt', d.settings.prompt]);
  if (d.settings && d.settings.voicemail && d.settings.voicemail.message)
    rows.push(['Voicemail message', d.settings.voicemail.message]);
  if (d.settings && d.settings.recording && d.settings.recording.enabled)
    rows.push(['Recording', 'on, kept ' + (d.settings.recording.retentionDays ?? 30) + ' days']);
  rows.forEach(function (r) {
    dl.appendChild(h('dt', null, r[0]));
    dl.appendChild(h('dd', null, r[1]));
  });
}

export function renderDetailProgress() {
  var d = state.detail;
  var box = clear($('#cd-progress'));
  if (!d) return;
  var p = state.progress.get(d.id);
  if (!p) return;
  box.appendChild(
    h(
      'div',
      { style: 'display:flex;justify-content:space-between;align-items:baseline;margin-bottom:6px' },
      h('span', { class: 'muted small' }, (p.total || 0) + ' contacts' + (p.live ? ' · live' : '')),
      h('span', { class: 'pct' }, (p.percent || 0) + '%'),
    ),
  );
  box.appendChild(progressBar(p));
  box.appendChild(progressCounters(p));
  var note = retryNote(p, p.state);
  if (note) box.appendChild(note);
  if (p.state) {
    var b = $('#cd-status');
    b.className = 'badge ' + p.state;
    b.textContent = p.state;
  }
}

$$('.controls button').forEach(function (b) {
  b.addEventListener('click', function () {
    if (state.selectedCampaign) controlCampaign(state.selectedCampaign, b.dataset.action, b);
  });
});

// the Start / Pause / Resume button on each campaign's card of the live monitor
$('#progress-list').addEventListener('click', function (e) {
  var b = e.target.closest('button[data-card-action]');
  var card = b && b.closest('.progress-card');
  if (card) controlCampaign(Number(card.dataset.campaignId), b.dataset.cardAction, b);
});

/** Start, pause, resume or stop campaign `id` through the API; `b` is disabled meanwhile. */
function controlCampaign(id, action, b) {
  b.disabled = true;
  api('POST', '/calls/automated/' + action, { campaignId: id }).then(function (r) {
    b.disabled = false;
    if (r.ok) {
      toast(campaignName(id) + ': ' + action + ' ✓', 'ok');
      // The engine's next progress message will confirm; until then show what the API answered.
      var p = state.progress.get(id);
      if (p && r.data.status) {
        p.state = r.data.status;
        renderProgress();
      }
    } else toast(action + ' refused: ' + (r.data.error || r.status), 'error');
    loadCampaigns().then(function () {
      if (state.selectedCampaign === id) selectCampaign(id);
    });
  });
}

export function renderImportResult(el, r) {
  clear(el);
  var d = r.data || {};
  if (!r.ok && d.rows === undefined) {
    el.appendChild(h('div', { class: 'form-error' }, d.error || 'upload failed (' + r.status + ')'));
    return;
  }
  el.appendChild(
    h(
      'div',
      { class: 'summary' },
      h('span', { class: 'good' }, (d.inserted || 0) + ' added'),
      h('span', null, (d.updated || 0) + ' updated'),
      d.duplicates ? h('span', null, d.duplicates + ' duplicates merged') : null,
      h('span', { class: d.invalid ? 'bad' : '' }, (d.invalid || 0) + ' rejected'),
    ),
  );
  if (d.error) el.appendChild(h('div', { class: 'form-error' }, d.error));
  var issues = (d.errors || [])
    .map(function (e) {
      return { line: e.line, reason: e.reason, kind: 'error' };
    })
    .concat(
      (d.warnings || []).map(function (e) {
        return { line: e.line, reason: e.reason, kind: 'warning' };
      }),
    );
  if (issues.length) {
    var shown = issues.slice(0, 200);
    el.appendChild(
      h(
        'table',
        { class: 'row-errors' },
        h('thead', null, h('tr', null, h('th', null, 'Line'), h('th', null, 'Problem'))),
        h(
          'tbody',
          null,
          shown.map(function (e) {
            return h(
              'tr',
              { class: e.kind },
              h('td', null, String(e.line)),
              h('td', null, (e.kind === 'warning' ? 'note: ' : '') + e.reason),
            );
          }),
        ),
      ),
    );
    if (issues.length > shown.length || d.errorsTruncated)
      el.appendChild(h('div', { class: 'muted small' }, 'More problems than shown; fix these and upload again.'));
  }
}

export function uploadForm(formSel, resultSel, pathFn) {
  $(formSel).addEventListener('submit', function (ev) {
    ev.preventDefault();
    var f = ev.target;
    var file = f.file.files[0];
    if (!file || !state.selectedCampaign) return;
    var fd = new FormData();
    var target = pathFn(f, fd);
    fd.append('file', file, file.name);
    var btn = $('button[type=submit]', f);
    btn.disabled = true;
    $(resultSel).textContent = 'Uploading ' + file.name + '…';
    api('POST', target, fd).then(function (r) {
      btn.disabled = false;
      renderImportResult($(resultSel), r);
      if (r.ok) {
        f.reset();
        loadCampaigns();
        selectCampaign(state.selectedCampaign);
      }
    });
  });
}
uploadForm('#contacts-form', '#contacts-result', function () {
  return '/campaigns/' + state.selectedCampaign + '/contacts';
});
uploadForm('#dnc-form', '#dnc-result', function (f, fd) {
  if (!f.global.checked) fd.append('campaignId', String(state.selectedCampaign));
  return '/dnc';
});

$('#cid-form').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var f = ev.target;
  var err = $('#cid-error');
  err.hidden = true;
  var body = { number: f.number.value };
  if (f.label.value.trim()) body.label = f.label.value.trim();
  api('POST', '/campaigns/' + state.selectedCampaign + '/phone-numbers', body).then(function (r) {
    if (!r.ok) {
      err.textContent = (r.data.errors && r.data.errors[0] ? r.data.errors[0].reason : r.data.error) || 'refused';
      err.hidden = false;
      return;
    }
    f.reset();
    state.detail.phone_numbers = r.data.phone_numbers;
    renderDetail();
    loadCampaigns();
  });
});

// create
$('#new-campaign-btn').addEventListener('click', function () {
  $('#create-form').hidden = false;
  $('#campaign-detail').hidden = true;
  $('#campaign-none').hidden = true;
  $('#create-form').name.focus();
});
$('#create-cancel').addEventListener('click', function () {
  $('#create-form').hidden = true;
  renderDetail();
  if (!state.detail) $('#campaign-none').hidden = false;
});
$('#create-form').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var f = ev.target;
  var err = $('#create-error');
  err.hidden = true;
  var settings = {};
  if (f.greeting.value.trim()) settings.greeting = f.greeting.value.trim();
  if (f.prompt.value.trim()) settings.prompt = f.prompt.value.trim();
  var body = {
    name: f.name.value.trim(),
    timezone: f.timezone.value.trim(),
    default_country: f.default_country.value.trim().toUpperCase(),
    window_start: f.window_start.value,
    window_end: f.window_end.value,
    max_concurrent: Number(f.max_concurrent.value),
    calls_per_second: Number(f.calls_per_second.value),
    max_attempts: Number(f.max_attempts.value),
    caller_id_strategy: f.caller_id_strategy.value,
    amd_enabled: f.amd_enabled.checked,
    retry_policy: {
      busy: Math.round(Number(f.retry_busy.value) * 60),
      no_answer: Math.round(Number(f.retry_no_answer.value) * 60),
      failed: Math.round(Number(f.retry_failed.value) * 60),
    },
    settings: settings,
  };
  api('POST', '/campaigns', body).then(function (r) {
    if (!r.ok) {
      err.textContent = r.data.error || 'could not create the campaign (' + r.status + ')';
      err.hidden = false;
      return;
    }
    toast('Campaign "' + r.data.name + '" created', 'ok');
    f.reset();
    $('#create-form').hidden = true;
    loadCampaigns().then(function () {
      selectCampaign(r.data.id);
    });
  });
});
