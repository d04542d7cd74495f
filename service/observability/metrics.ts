import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The service's Prometheus metrics, in a registry of its own (several apps can share a process in tests). */
export function createMetrics() {
  const registry = new Registry();
  // The default names already start with process_ or nodejs_.
  collectDefaultMetrics({ register: registry, prefix: "fiatgas_" });
  return {
    registry,
    rpcCalls: new Counter({
      name: "fiatgas_rpc_calls_total",
      help: "JSON-RPC calls by method and outcome (ok or the error code)",
      labelNames: ["method", "outcome"] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: "fiatgas_http_request_duration_seconds",
      help: "HTTP request duration by route and status",
      labelNames: ["route", "status"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
