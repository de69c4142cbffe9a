import net from 'net';

/** Resolve when `port` on `host` can be bound, reject with the listen error (EADDRINUSE, EACCES...) otherwise. */
export function checkPortFree(port: number, host = '0.0.0.0'): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve()));
  });
}

/**
 * A TCP port free a moment ago. Only for the runtime's MQTT and FastAGI ports when set to 0 (main.ts
 * anyFree says why they must be known before they are bound); anything that can bind 0 and read the port
 * back does that instead.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
