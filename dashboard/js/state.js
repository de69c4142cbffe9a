/** The dashboard state (config, calls, campaigns, progress, selection) and the phone/campaign display helpers. */

export var state = {
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

export function maskPhone(p) {
  if (!p) return '–';
  p = String(p);
  if (state.showNumbers) return p;
  if (p.length <= 5) return p.replace(/\d/g, '•');
  return p.slice(0, 3) + p.slice(3, -2).replace(/\d/g, '•') + p.slice(-2);
}
export function campaignName(id) {
  if (id === null || id === undefined) return 'inbound';
  var c = state.campaigns.get(Number(id));
  return c ? c.name : 'campaign ' + id;
}
