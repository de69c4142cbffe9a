/** Live calls: the calls table, the conversation panel, per-call events. */
import { $, $$, append, clear, fmtDuration, fmtMs, h, STATUS_LABEL } from './dom.js';
import { campaignName, maskPhone, state } from './state.js';
import { api, apiBlobUrl } from './api.js';

export function ensureCall(id, e) {
  var c = state.calls.get(id);
  if (!c) {
    c = {
      id: id,
      campaignId: null,
      phone: null,
      name: null,
      status: 'initiated',
      startedAt: Date.now(),
      turns: new Map(),
      ended: false,
      fresh: true,
    };
    state.calls.set(id, c);
    state.gone.delete(id);
  }
  if (e) {
    if (e.campaignId !== undefined && e.campaignId !== null) c.campaignId = e.campaignId;
    if (e.phone) c.phone = e.phone;
    if (e.contactName) c.name = e.contactName;
  }
  return c;
}

export function onCallEvent(id, e) {
  var ts = Date.parse(e.ts);
  var c;
  switch (e.type) {
    case 'call_started':
      c = ensureCall(id, e);
      if (isFinite(ts)) c.startedAt = ts;
      c.status = 'initiated';
      break;
    case 'call_answered':
      c = ensureCall(id, e);
      c.status = 'in_progress';
      c.answeredAt = isFinite(ts) ? ts : Date.now();
      break;
    case 'status':
      c = ensureCall(id, e);
      if (e.status) c.status = e.status;
      break;
    case 'conversation_turn':
      c = ensureCall(id, e);
      if (c.status === 'initiated' || c.status === 'ringing') c.status = 'in_progress';
      c.turns.set(Number(e.seq), {
        seq: Number(e.seq),
        userText: e.userText,
        botText: e.botText,
        confidence: e.confidence,
        action: e.action,
        simulated: e.simulated === true,
        timing: e.timing || {},
        media: e.media,
        interrupted: e.interrupted === true,
        playedText: e.playedText,
        at: isFinite(ts) ? ts : Date.now(),
      });
      break;
    case 'call_ended':
      c = state.calls.get(id) || state.gone.get(id);
      if (!c) return; // a call we never saw: nothing to remove
      c.ended = true;
      c.status = e.outcome || 'completed';
      c.durationMs = typeof e.durationMs === 'number' ? e.durationMs : Date.now() - c.startedAt;
      if (Array.isArray(e.transcript)) {
        e.transcript.forEach(function (t) {
          if (!c.turns.has(Number(t.seq)))
            c.turns.set(Number(t.seq), { seq: Number(t.seq), userText: t.userText, botText: t.botText, timing: {} });
        });
      }
      setTimeout(function () {
        if (state.calls.get(id) === c) {
          state.calls.delete(id);
          state.gone.set(id, c);
          if (state.gone.size > 50) state.gone.delete(state.gone.keys().next().value);
          renderCalls();
        }
      }, 4000);
      break;
    default:
      return;
  }
  renderCalls();
  if (state.selectedCall === id) renderConvo();
}

export function renderCalls() {
  var body = $('#calls-body');
  var list = Array.from(state.calls.values()).sort(function (a, b) {
    return b.startedAt - a.startedAt;
  });
  var rows = new Map(
    $$('tr', body).map(function (tr) {
      return [tr.dataset.callId, tr];
    }),
  );
  var prev = null;
  list.forEach(function (c) {
    var tr = rows.get(c.id);
    if (!tr) {
      tr = h('tr', {
        dataset: { callId: c.id },
        class: c.fresh ? 'new' : '',
        onclick: function () {
          selectCall(c.id);
        },
      });
      tr.addEventListener('animationend', function () {
        tr.classList.remove('new');
      });
      c.fresh = false;
    }
    rows.delete(c.id);
    fillCallRow(tr, c);
    if (prev ? prev.nextSibling !== tr : body.firstChild !== tr)
      body.insertBefore(tr, prev ? prev.nextSibling : body.firstChild);
    prev = tr;
  });
  rows.forEach(function (tr) {
    tr.remove();
  });
  var active = list.filter(function (c) {
    return !c.ended;
  }).length;
  $('#active-count').textContent = String(active);
  $('#calls-empty').hidden = list.length > 0;
}

export function fillCallRow(tr, c) {
  tr.classList.toggle('ended', c.ended);
  tr.classList.toggle('selected', state.selectedCall === c.id);
  tr.dataset.status = c.status;
  clear(tr);
  append(tr, [
    h('td', null, '#' + c.id),
    h('td', { title: campaignName(c.campaignId) }, campaignName(c.campaignId)),
    h(
      'td',
      null,
      h('span', { class: 'phone' }, maskPhone(c.phone)),
      c.name ? h('span', { class: 'sub' }, c.name) : null,
    ),
    h(
      'td',
      null,
      h(
        'span',
        { class: 'badge ' + c.status },
        c.ended ? 'ended · ' + (STATUS_LABEL[c.status] || c.status) : STATUS_LABEL[c.status] || c.status,
      ),
    ),
    h('td', { class: 'num duration' }, fmtDuration(c.ended ? c.durationMs : Date.now() - c.startedAt)),
    h('td', { class: 'num' }, String(c.turns.size)),
  ]);
}

export function tickDurations() {
  $$('#calls-body tr').forEach(function (tr) {
    var c = state.calls.get(tr.dataset.callId);
    if (c && !c.ended) $('.duration', tr).textContent = fmtDuration(Date.now() - c.startedAt);
  });
  var sel = state.selectedCall && state.calls.get(state.selectedCall);
  if (sel && !sel.ended) $('#convo-meta').textContent = metaLine(sel);
}

export function selectCall(id) {
  state.selectedCall = id;
  $$('#calls-body tr').forEach(function (tr) {
    tr.classList.toggle('selected', tr.dataset.callId === id);
  });
  var c = state.calls.get(id) || state.gone.get(id);
  renderConvo();
  // The call record: its whole-call recording, and the turns so far of a call that was already running
  // when the page opened.
  if (c && /^\d+$/.test(id)) {
    api('GET', '/calls/' + id).then(function (r) {
      if (!r.ok) return;
      if (r.data.recording) {
        c.recording = r.data.recording;
        if (state.selectedCall === id) renderConvo();
      }
      if (!r.data.turns || c.turns.size > 0) return;
      r.data.turns.forEach(function (t) {
        if (!c.turns.has(t.seq)) {
          c.turns.set(t.seq, {
            seq: t.seq,
            userText: t.user_text,
            botText: t.bot_text,
            confidence: t.confidence,
            action: t.action,
            simulated: !!(t.engines && /simulated/.test(String(t.engines.stt || ''))),
            timing: {
              recordMs: t.record_ms,
              sttMs: t.stt_ms,
              llmMs: t.llm_ms,
              ttsMs: t.tts_ms,
              playbackMs: t.playback_ms,
              totalMs: t.total_ms,
              endpointMs: t.endpoint_ms,
              llmFirstTokenMs: t.llm_first_token_ms,
              ttsFirstAudioMs: t.tts_first_audio_ms,
              replyLatencyMs: t.reply_latency_ms,
            },
            media: t.media,
            interrupted: t.interrupted === true,
            playedText: t.played_text,
            at: Date.parse(t.created_at),
          });
        }
      });
      if (state.selectedCall === id) renderConvo();
      renderCalls();
    });
  }
}

export function metaLine(c) {
  return (
    campaignName(c.campaignId) +
    ' · ' +
    maskPhone(c.phone) +
    ' · ' +
    fmtDuration(c.ended ? c.durationMs : Date.now() - c.startedAt)
  );
}

export function renderConvo() {
  var box = clear($('#convo'));
  var id = state.selectedCall;
  var c = id && (state.calls.get(id) || state.gone.get(id));
  if (!c) {
    $('#convo-title').textContent = 'Conversation';
    $('#convo-meta').textContent = '';
    append(box, h('div', { class: 'empty' }, 'Select a call to follow its conversation turn by turn.'));
    return;
  }
  $('#convo-title').textContent = 'Call #' + c.id + (c.name ? ' · ' + c.name : '');
  $('#convo-meta').textContent = metaLine(c);
  var turns = Array.from(c.turns.values()).sort(function (a, b) {
    return a.seq - b.seq;
  });
  if (!turns.length)
    append(
      box,
      h(
        'div',
        { class: 'empty' },
        c.ended ? 'No conversation (the call was not answered).' : 'Waiting for the first turn…',
      ),
    );
  turns.forEach(function (t) {
    var el = h('div', { class: 'turn', dataset: { seq: String(t.seq) } });
    if (t.userText)
      el.appendChild(
        h(
          'div',
          { class: 'bubble user' },
          h(
            'span',
            { class: 'who' },
            'Caller' +
              (t.simulated ? ' · simulated' : '') +
              (typeof t.confidence === 'number' ? ' · ' + Math.round(t.confidence * 100) + '%' : ''),
          ),
          t.userText,
        ),
      );
    if (t.botText)
      el.appendChild(
        h(
          'div',
          { class: 'bubble bot' },
          h('span', { class: 'who' }, t.seq === 0 ? 'Agent · greeting' : 'Agent'),
          t.botText,
        ),
      );
    if (t.interrupted)
      el.appendChild(
        h('div', { class: 'interrupted' }, 'interrupted: the caller heard "' + (t.playedText || '') + '"'),
      );
    var tm = t.timing || {};
    // stream mode: what the caller waited (end of speech to our first audio) and its parts first
    var chips = (
      t.media === 'stream'
        ? [
            ['wait', tm.replyLatencyMs],
            ['endpoint', tm.endpointMs],
            ['stt', tm.sttMs],
            ['llm 1st', tm.llmFirstTokenMs],
            ['tts 1st', tm.ttsFirstAudioMs],
            ['play', tm.playbackMs],
          ]
        : [
            ['record', tm.recordMs],
            ['stt', tm.sttMs],
            ['llm', tm.llmMs],
            ['tts', tm.ttsMs],
            ['play', tm.playbackMs],
          ]
    )
      .filter(function (x) {
        return fmtMs(x[1]);
      })
      .map(function (x) {
        return h('span', null, x[0] + ' ' + fmtMs(x[1]));
      });
    var total = typeof tm.totalMs === 'number' ? tm.totalMs : null;
    if (chips.length)
      el.appendChild(
        h(
          'div',
          { class: 'timing' },
          chips,
          total !== null ? h('span', { class: 'total' }, 'turn ' + fmtMs(total)) : null,
          t.action ? h('span', null, '→ ' + t.action) : null,
        ),
      );
    box.appendChild(el);
  });
  if (c.ended)
    box.appendChild(
      h(
        'div',
        { class: 'convo-end' },
        'Call ended · ' + (STATUS_LABEL[c.status] || c.status) + ' · ' + fmtDuration(c.durationMs),
      ),
    );
  if (c.recording) box.appendChild(recordingView(c));
  box.scrollTop = box.scrollHeight;
}

/** The whole-call recording: loaded on demand with the API credential, played in an <audio>. */
function recordingView(c) {
  var rec = c.recording;
  var el = h('div', { class: 'convo-recording' });
  if (!rec.available) {
    el.appendChild(h('span', null, 'Recording deleted (retention)'));
    return el;
  }
  if (c.recordingUrl) {
    el.appendChild(h('audio', { controls: '', src: c.recordingUrl, preload: 'auto' }));
    return el;
  }
  el.appendChild(
    h(
      'button',
      {
        type: 'button',
        class: 'btn small',
        onclick: function () {
          apiBlobUrl('/calls/' + c.id + '/recording').then(function (r) {
            if (!r.ok) {
              el.textContent = 'Recording: ' + r.error;
              return;
            }
            c.recordingUrl = r.url;
            if (state.selectedCall === c.id) renderConvo();
          });
        },
      },
      'Play recording',
    ),
  );
  return el;
}

$('#show-numbers').addEventListener('change', function (e) {
  state.showNumbers = e.target.checked;
  renderCalls();
  renderConvo();
});
