// The Prometheus scrape endpoint of a node: GET /metrics on monitoring.metrics_port, answered
// from the node's own NodeMetrics registry (src/monitoring/metrics.ts). Its own listener, apart
// from the admin API, so a scraper can be given this port alone. Lives in server/ because only
// server/ touches sockets and http.
import http from 'node:http';
import { closeHttp, listenHttp } from './http-listen.js';
import type { NodeMetrics } from '../monitoring/metrics.js';

export class MetricsHttp {
  private readonly server: http.Server;

  constructor(private readonly metrics: NodeMetrics) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  listen(host: string, port: number): Promise<number> {
    return listenHttp(this.server, host, port);
  }

  close(): Promise<void> {
    return closeHttp(this.server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname !== '/metrics') return text(res, 404, 'not found: metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed\n');
    try {
      const body = await this.metrics.scrape();
      res.writeHead(200, { 'content-type': this.metrics.contentType, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      text(res, 500, `scrape failed: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
}

function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
