'use strict';
/**
 * Docker HEALTHCHECK of the Node-RED container: the runtime's HTTP server (editor, admin API, HTTP API,
 * dashboard) answers on PORT. Exit 0 healthy, 1 not. FastAGI is deliberately not probed: an empty
 * connection would be logged as a refused session every interval.
 */
const http = require('http');

const port = Number(process.env.PORT || 1880);
const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 4000 }, (res) => {
  res.resume();
  if (res.statusCode && res.statusCode < 500) process.exit(0);
  console.error(`unhealthy: HTTP ${res.statusCode} on port ${port}`);
  process.exit(1);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (err) => {
  console.error(`unhealthy: HTTP port ${port}: ${err.message}`);
  process.exit(1);
});
