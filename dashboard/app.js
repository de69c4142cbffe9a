/*
 * AI Dialer dashboard. Plain browser JavaScript, no framework, no build step.
 * Live data: MQTT over WebSocket (mqtt.min.js served by the runtime), topics
 *   <root>/calls/+/events       call_started, call_answered, status, conversation_turn, call_ended
 *   <root>/campaigns/+/status   campaign_progress (retained)
 * Management: the HTTP API (config.apiBase, default ../api/v1).
 * Everything a server or a caller sends is shown with textContent, never as HTML.
 */
(function () {
  'use strict';

  // ------------------------------------------------------------------ helpers
  var $ = function (sel, el) {
    return (el || document).querySelector(sel);
  };
  var $$ = function (sel, el) {
    return Array.prototype.slice.call((el || document).querySelectorAll(sel));
  };

  /** h('div', {class: 'x', onclick: fn}, child, 'text', ...) -> element (text children are text nodes). */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
        else if (k === 'style') el.setAttribute('style', v);
        else if (k === 'dataset')
          Object.keys(v).forEach(function (d) {
            el.dataset[d] = v[d];
          });
        else el.setAttribute(k, v === true ? '' : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, c) {
    if (c === undefined || c === null || c === false) return;
    if (Array.isArray(c)) {
      c.forEach(function (x) {
        append(el, x);
      });
      return;
    }
    el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function fmtDuration(ms) {
    if (!(ms >= 0)) return '–';
    var s = Math.floor(ms / 1000);
    var hh = Math.floor(s / 3600);
    var mm = Math.floor((s % 3600) / 60);
    var ss = s % 60;
    var two = function (n) {
      return (n < 10 ? '0' : '') + n;
    };
    return hh ? hh + ':' + two(mm) + ':' + two(ss) : mm + ':' + two(ss);
  }
  function fmtMs(ms) {
    if (typeof ms !== 'number' || !isFinite(ms)) return null;
    return ms >= 1000 ? (ms / 1000).toFixed(ms >= 10000 ? 0 : 1) + ' s' : Math.round(ms) + ' ms';
  }
  function num(n) {
    return typeof n === 'number' && isFinite(n) ? n : 0;
  }

  function toast(message, kind) {
    var t = h('div', { class: 'toast ' + (kind || ''), role: 'status' }, message);
    $('#toasts').appendChild(t);
    setTimeout(
      function () {
        t.remove();
      },
      kind === 'error' ? 7000 : 3500,
    );
  }

  var STATUS_LABEL = {
    initiated: 'dialing',
    ringing: 'ringing',
    answered: 'talking',
    in_progress: 'talking',
    completed: 'completed',
    failed: 'failed',
    no_answer: 'no answer',
    busy: 'busy',
    congestion: 'congestion',
    cancelled: 'cancelled',
  };

  // ------------------------------------------------------------------ state
  var state = {
    config: null,
    calls: new Map(), // callId -> call (active, or ended and about to leave)
    gone: new Map(), // ended calls that left the table but may still be shown in the panel
    campaigns: new Map(), // id -> campaign row (API)
    progress: new Map(), // id -> progress {queued, dialing, ..., percent, state, live}
    selectedCall: null,
    selectedCampaign: null,
    detail: null,
    showNumbers: false,
    client: null,
  };

  function maskPhone(p) {
    if (!p) return '–';
    p = String(p);
    if (state.showNumbers) return p;
    if (p.length <= 5) return p.replace(/\d/g, '•');
    return p.slice(0, 3) + p.slice(3, -2).replace(/\d/g, '•') + p.slice(-2);
  }
  function campaignName(id) {
    if (id === null || id === undefined) return 'inbound';
    var c = state.campaigns.get(Number(id));
    return c ? c.name : 'campaign ' + id;
  }

  // ------------------------------------------------------------------ theme & tabs
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

  function showTab() {
    var name = (location.hash || '#monitor').slice(1).split('/')[0];
    if (name !== 'campaigns') name = 'monitor';
    $$('.tab').forEach(function (t) {
      t.classList.toggle('active', t.dataset.tab === name);
    });
    $('#tab-monitor').hidden = name !== 'monitor';
    $('#tab-campaigns').hidden = name !== 'campaigns';
  }
  window.addEventListener('hashchange', showTab);

  // ------------------------------------------------------------------ HTTP API
  function apiUrl(path) {
    return state.config.apiBase.replace(/\/+$/, '') + path;
  }

  /** Call the API. Resolves {ok, status, data}; never throws for HTTP errors. */
  function api(method, path, body) {
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
   * The credential sent with every API call (reads carry personal data too): the token saved in
   * this browser, else, when the API accepts the Node-RED editor login, the editor's access token
   * (same origin, saved by the editor as "auth-tokens").
   */
  function apiToken() {
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

  function askToken() {
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
    if (v) loadCampaigns().then(loadActiveCalls);
  });
  $('#token-btn').addEventListener('click', askToken);

  // ------------------------------------------------------------------ MQTT
  function setConn(s, text) {
    var el = $('#conn');
    el.dataset.state = s;
    $('#conn-text').textContent = text;
  }

  function mqttCreds() {
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

  function connectMqtt() {
    var m = state.config.mqtt;
    if (typeof window.mqtt === 'undefined') {
      setConn('error', 'MQTT client missing');
      return;
    }
    var url = m.url || (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + m.path;
    mqttCreds().then(function (creds) {
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
        setConn('connected', 'live');
        client.subscribe([root + '/calls/+/events', root + '/campaigns/+/status'], { qos: 1 }, function (err) {
          if (err) setConn('error', 'subscribe refused');
        });
      });
      client.on('reconnect', function () {
        setConn('reconnecting', 'reconnecting…');
      });
      client.on('offline', function () {
        setConn('offline', 'offline – retrying');
      });
      client.on('close', function () {
        if ($('#conn').dataset.state === 'connected') setConn('reconnecting', 'reconnecting…');
      });
      client.on('error', function (err) {
        var msg = String((err && err.message) || err);
        if (/not authori[sz]ed|bad user ?name or password/i.test(msg)) {
          setConn('error', 'login refused');
          sessionStorage.removeItem('aiDialerMqtt');
          client.end(true);
          setTimeout(connectMqtt, 500);
        }
      });
      client.on('message', function (topic, payload) {
        onMessage(root, topic, payload);
      });
    });
  }

  function onMessage(root, topic, payload) {
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

  // ------------------------------------------------------------------ calls
  function ensureCall(id, e) {
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

  function onCallEvent(id, e) {
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

  function renderCalls() {
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

  function fillCallRow(tr, c) {
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

  function tickDurations() {
    $$('#calls-body tr').forEach(function (tr) {
      var c = state.calls.get(tr.dataset.callId);
      if (c && !c.ended) $('.duration', tr).textContent = fmtDuration(Date.now() - c.startedAt);
    });
    var sel = state.selectedCall && state.calls.get(state.selectedCall);
    if (sel && !sel.ended) $('#convo-meta').textContent = metaLine(sel);
  }

  function selectCall(id) {
    state.selectedCall = id;
    $$('#calls-body tr').forEach(function (tr) {
      tr.classList.toggle('selected', tr.dataset.callId === id);
    });
    var c = state.calls.get(id) || state.gone.get(id);
    renderConvo();
    // Calls that were already running when the page opened: fetch the turns so far.
    if (c && c.turns.size === 0 && /^\d+$/.test(id)) {
      api('GET', '/calls/' + id).then(function (r) {
        if (!r.ok || !r.data.turns) return;
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
              },
              at: Date.parse(t.created_at),
            });
          }
        });
        if (state.selectedCall === id) renderConvo();
        renderCalls();
      });
    }
  }

  function metaLine(c) {
    return (
      campaignName(c.campaignId) +
      ' · ' +
      maskPhone(c.phone) +
      ' · ' +
      fmtDuration(c.ended ? c.durationMs : Date.now() - c.startedAt)
    );
  }

  function renderConvo() {
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
      var tm = t.timing || {};
      var chips = [
        ['record', tm.recordMs],
        ['stt', tm.sttMs],
        ['llm', tm.llmMs],
        ['tts', tm.ttsMs],
        ['play', tm.playbackMs],
      ]
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
    box.scrollTop = box.scrollHeight;
  }

  $('#show-numbers').addEventListener('change', function (e) {
    state.showNumbers = e.target.checked;
    renderCalls();
    renderConvo();
  });

  // ------------------------------------------------------------------ progress
  var COUNTERS = ['completed', 'failed', 'no_answer', 'busy', 'dnc_skipped', 'active', 'dialing', 'queued'];
  var COUNTER_LABEL = {
    completed: 'completed',
    failed: 'failed',
    no_answer: 'no answer',
    busy: 'busy',
    dnc_skipped: 'do-not-call',
    active: 'active',
    dialing: 'dialing',
    queued: 'queued',
  };
  var COLORS = {
    completed: 'var(--ok)',
    failed: 'var(--bad)',
    no_answer: 'var(--warn)',
    busy: 'var(--orange)',
    dnc_skipped: 'var(--violet)',
    active: 'var(--accent-strong)',
    dialing: 'var(--cyan)',
  };

  function onProgress(id, p, live) {
    if (!isFinite(id)) return;
    var prev = state.progress.get(id);
    if (!live && prev && prev.live) return; // live data wins over the API snapshot
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
    state.progress.set(id, q);
    if (q.state && state.campaigns.has(id)) state.campaigns.get(id).status = q.state;
    renderProgress();
    if (state.selectedCampaign === id) renderDetailProgress();
    renderCampaignList();
  }

  /** Progress from the API's status summary (before any live message). */
  function progressFromStatus(s) {
    if (s.progress && typeof s.progress.total === 'number') {
      var p = {};
      Object.keys(s.progress).forEach(function (k) {
        p[k] = s.progress[k];
      });
      p.state = s.progress.status || s.status;
      return p;
    }
    var b = s.calls.byStatus || {};
    var o = s.calls.byOutcome || {};
    return {
      state: s.status,
      queued: Math.max(0, s.contacts.pending - (s.contacts.on_dnc_list || 0)),
      dialing: num(b.initiated) + num(b.ringing),
      active: num(b.in_progress),
      completed: num(o.completed),
      failed: num(o.failed),
      no_answer: num(o.no_answer),
      busy: num(o.busy),
      dnc_skipped: s.contacts.dnc + (s.contacts.on_dnc_list || 0),
      total: s.contacts.total,
      percent: s.progressPercent,
    };
  }

  function progressBar(p) {
    var total = Math.max(1, p.total || 0);
    var segs = ['completed', 'failed', 'no_answer', 'busy', 'dnc_skipped', 'active', 'dialing'].map(function (k) {
      var w = Math.min(100, (p[k] / total) * 100);
      return w > 0
        ? h('span', {
            class: 'seg-' + k,
            style: 'width:' + w.toFixed(2) + '%;background:' + COLORS[k],
            title: COUNTER_LABEL[k] + ': ' + p[k],
          })
        : null;
    });
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

  function progressCounters(p) {
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

  function renderProgress() {
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
        dnc_skipped: 0,
        active: 0,
        dialing: 0,
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
              h('div', { class: 'pc-name' }, campaignName(id)),
              h('span', { class: 'muted small' }, (p.total || 0) + ' contacts' + (p.live ? '' : ' · snapshot')),
            ),
            h(
              'div',
              { style: 'display:flex;align-items:center;gap:10px' },
              h('span', { class: 'badge ' + st }, st),
              h('span', { class: 'pct' }, (p.percent || 0) + '%'),
            ),
          ),
          progressBar(p),
          progressCounters(p),
        ),
      );
    });
  }

  // ------------------------------------------------------------------ campaigns
  function loadCampaigns() {
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

  function loadActiveCalls() {
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

  function renderCampaignList() {
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
  function resetCampaignForms() {
    clear($('#contacts-result'));
    clear($('#dnc-result'));
    $('#cid-error').hidden = true;
    ['#contacts-form', '#dnc-form', '#cid-form'].forEach(function (sel) {
      $(sel).reset();
    });
  }

  function selectCampaign(id) {
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

  function renderDetail() {
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
        ['busy', 'no_answer', 'failed']
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
    rows.forEach(function (r) {
      dl.appendChild(h('dt', null, r[0]));
      dl.appendChild(h('dd', null, r[1]));
    });
  }

  function renderDetailProgress() {
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
    if (p.state) {
      var b = $('#cd-status');
      b.className = 'badge ' + p.state;
      b.textContent = p.state;
    }
  }

  $$('.controls button').forEach(function (b) {
    b.addEventListener('click', function () {
      var id = state.selectedCampaign;
      if (!id) return;
      var action = b.dataset.action;
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
    });
  });

  function renderImportResult(el, r) {
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

  function uploadForm(formSel, resultSel, pathFn) {
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

  // ------------------------------------------------------------------ start
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
})();
