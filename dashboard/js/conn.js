/** The connection badge in the header and, when the live feed cannot connect, the line saying why and what to do. */
import { $ } from './dom.js';

/** state: connecting | connected | reconnecting | offline | error; hint: '' hides the line. */
export function setConn(s, text, hint) {
  var el = $('#conn');
  el.dataset.state = s;
  $('#conn-text').textContent = text;
  var h = $('#conn-hint');
  h.textContent = hint || '';
  h.hidden = !hint;
  h.dataset.state = s;
  el.title = hint || 'Live data';
}
