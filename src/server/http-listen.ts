// Binding and closing the node's small HTTP listeners (admin API, metrics) the same way.
import type http from 'node:http';

/** Binds host:port (0 = any free port); resolves with the bound port. */
export function listenHttp(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : port);
    });
  });
}

/** Stops accepting and resolves once open connections are gone (idle ones are closed now). */
export function closeHttp(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
