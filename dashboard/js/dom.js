/** DOM and formatting helpers: h(), $(), toast(), durations, status labels. */

export var $ = function (sel, el) {
  return (el || document).querySelector(sel);
};
export var $$ = function (sel, el) {
  return Array.prototype.slice.call((el || document).querySelectorAll(sel));
};

/** h('div', {class: 'x', onclick: fn}, child, 'text', ...) -> element (text children are text nodes). */
export function h(tag, attrs) {
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
export function append(el, c) {
  if (c === undefined || c === null || c === false) return;
  if (Array.isArray(c)) {
    c.forEach(function (x) {
      append(el, x);
    });
    return;
  }
  el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
}
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmtDuration(ms) {
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
export function fmtMs(ms) {
  if (typeof ms !== 'number' || !isFinite(ms)) return null;
  return ms >= 1000 ? (ms / 1000).toFixed(ms >= 10000 ? 0 : 1) + ' s' : Math.round(ms) + ' ms';
}
export function num(n) {
  return typeof n === 'number' && isFinite(n) ? n : 0;
}

export function toast(message, kind) {
  var t = h('div', { class: 'toast ' + (kind || ''), role: 'status' }, message);
  $('#toasts').appendChild(t);
  setTimeout(
    function () {
      t.remove();
    },
    kind === 'error' ? 7000 : 3500,
  );
}

export var STATUS_LABEL = {
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
  machine: 'answering machine',
};
