/**
 * The edge's metrics, rendered as Prometheus text (exposition format 0.0.4) by `GET /metrics`. Hand
 * written: a few counters, gauges and one histogram do not justify a client library on the hot path.
 */
import { rejectName } from '@bourse/schemas';

/** Ack latency buckets, seconds (upper bounds). */
const LATENCY_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export type OrderKind = 'place' | 'cancel' | 'amend' | 'massCancel';

export class EdgeMetrics {
  readonly orders: Record<OrderKind, number> = { place: 0, cancel: 0, amend: 0, massCancel: 0 };
  readonly rejects = new Map<number, number>();
  readonly protocolErrors = new Map<number, number>();
  readonly latencyCounts = new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0);
  latencySumS = 0;
  latencyCount = 0;
  framesIn = 0;
  sessions = 0;
  sessionsAuthenticated = 0;
  httpRequests = 0;
  cancelOnDisconnectOrders = 0;
  /** Place requests per second over the last whole second. */
  ordersPerSec = 0;
  #placeAtLastTick = 0;

  /** Called once a second by the edge. */
  tick(): void {
    this.ordersPerSec = this.orders.place - this.#placeAtLastTick;
    this.#placeAtLastTick = this.orders.place;
  }

  order(kind: OrderKind): void {
    this.orders[kind]++;
  }

  reject(code: number): void {
    this.rejects.set(code, (this.rejects.get(code) ?? 0) + 1);
  }

  protocolError(code: number): void {
    this.protocolErrors.set(code, (this.protocolErrors.get(code) ?? 0) + 1);
    this.reject(code);
  }

  /** An order-entry answer (ack or reject) went out `ms` after its request arrived. */
  ackLatency(ms: number): void {
    const s = ms / 1000;
    let i = 0;
    while (i < LATENCY_BUCKETS_S.length && s > LATENCY_BUCKETS_S[i]!) i++;
    this.latencyCounts[i]!++;
    this.latencySumS += s;
    this.latencyCount++;
  }

  render(extra = ''): string {
    const L: string[] = [];
    L.push('# HELP bourse_edge_orders_total Order-entry requests received, by kind.', '# TYPE bourse_edge_orders_total counter');
    for (const [k, v] of Object.entries(this.orders)) L.push(`bourse_edge_orders_total{kind="${k}"} ${v}`);
    L.push('# HELP bourse_edge_orders_per_second Place requests in the last whole second.', '# TYPE bourse_edge_orders_per_second gauge');
    L.push(`bourse_edge_orders_per_second ${this.ordersPerSec}`);
    L.push('# HELP bourse_edge_rejects_total Rejects sent (typed error frames and HTTP errors), by code.', '# TYPE bourse_edge_rejects_total counter');
    for (const [c, v] of [...this.rejects].sort((a, b) => a[0] - b[0])) L.push(`bourse_edge_rejects_total{code="${c}",name="${rejectName(c)}"} ${v}`);
    L.push('# HELP bourse_edge_protocol_errors_total Protocol-level errors (PROTO_*, AUTH_*, THROTTLE_*), by code.', '# TYPE bourse_edge_protocol_errors_total counter');
    for (const [c, v] of [...this.protocolErrors].sort((a, b) => a[0] - b[0])) L.push(`bourse_edge_protocol_errors_total{code="${c}",name="${rejectName(c)}"} ${v}`);
    L.push('# HELP bourse_edge_ack_latency_seconds Order-entry request received to answer sent (includes the journal commit).', '# TYPE bourse_edge_ack_latency_seconds histogram');
    let cum = 0;
    for (let i = 0; i < LATENCY_BUCKETS_S.length; i++) {
      cum += this.latencyCounts[i]!;
      L.push(`bourse_edge_ack_latency_seconds_bucket{le="${LATENCY_BUCKETS_S[i]}"} ${cum}`);
    }
    cum += this.latencyCounts[LATENCY_BUCKETS_S.length]!;
    L.push(`bourse_edge_ack_latency_seconds_bucket{le="+Inf"} ${cum}`, `bourse_edge_ack_latency_seconds_sum ${this.latencySumS}`, `bourse_edge_ack_latency_seconds_count ${this.latencyCount}`);
    L.push('# HELP bourse_edge_ws_sessions Open WebSocket sessions.', '# TYPE bourse_edge_ws_sessions gauge', `bourse_edge_ws_sessions ${this.sessions}`);
    L.push('# HELP bourse_edge_ws_sessions_authenticated Authenticated WebSocket sessions.', '# TYPE bourse_edge_ws_sessions_authenticated gauge', `bourse_edge_ws_sessions_authenticated ${this.sessionsAuthenticated}`);
    L.push('# HELP bourse_edge_frames_in_total WebSocket frames received.', '# TYPE bourse_edge_frames_in_total counter', `bourse_edge_frames_in_total ${this.framesIn}`);
    L.push('# HELP bourse_edge_http_requests_total HTTP requests received.', '# TYPE bourse_edge_http_requests_total counter', `bourse_edge_http_requests_total ${this.httpRequests}`);
    L.push('# HELP bourse_edge_cancel_on_disconnect_total Orders cancelled because their session disconnected.', '# TYPE bourse_edge_cancel_on_disconnect_total counter', `bourse_edge_cancel_on_disconnect_total ${this.cancelOnDisconnectOrders}`);
    return L.join('\n') + '\n' + (extra ? (extra.endsWith('\n') ? extra : extra + '\n') : '');
  }
}
