/** Upper bounds (seconds) of the request-latency histogram buckets. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

interface Histogram {
  counts: number[]
  sum: number
  count: number
}

function escapeLabel(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')
}

function observeInto(histograms: Map<string, Histogram>, key: string, seconds: number): void {
  let histogram = histograms.get(key)
  if (!histogram) {
    histogram = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }
    histograms.set(key, histogram)
  }
  for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) histogram.counts[i]++
  histogram.sum += seconds
  histogram.count++
}

function renderHistograms(lines: string[], name: string, histograms: Map<string, Histogram>): void {
  for (const [labels, histogram] of histograms) {
    BUCKETS.forEach((bound, i) => lines.push(`${name}_bucket{${labels},le="${bound}"} ${histogram.counts[i]}`))
    lines.push(`${name}_bucket{${labels},le="+Inf"} ${histogram.count}`)
    lines.push(`${name}_sum{${labels}} ${histogram.sum}`)
    lines.push(`${name}_count{${labels}} ${histogram.count}`)
  }
}

/**
 * Prometheus counters and a latency histogram for HTTP requests. Routes are the matched
 * pattern (`/api/v1/users/:id`), never the raw path, so cardinality stays bounded.
 */
export class HttpMetrics {
  private readonly requests = new Map<string, number>()
  private readonly latency = new Map<string, Histogram>()
  private readonly startedAt = Date.now()
  /** Label strings by method and route, built once: observe() runs on every request. */
  private readonly labels = new Map<string, string>()

  observe(method: string, route: string, status: number, seconds: number): void {
    const labelKey = `${method} ${route}`
    let latencyKey = this.labels.get(labelKey)
    if (latencyKey === undefined) {
      latencyKey = `method="${escapeLabel(method)}",route="${escapeLabel(route)}"`
      this.labels.set(labelKey, latencyKey)
    }
    const requestKey = `${latencyKey},status="${status}"`
    this.requests.set(requestKey, (this.requests.get(requestKey) ?? 0) + 1)

    observeInto(this.latency, latencyKey, seconds)
  }

  private readonly upstreamRequests = new Map<string, number>()
  private readonly upstreamLatency = new Map<string, Histogram>()

  /**
   * One request passed to an upstream (by the passthrough) or one upstream tool call of `/mcp`:
   * by server ID (bounded: admins create them) and outcome (`ok`, `tool_error`, `client_error`,
   * `upstream_error`, `unavailable`, `connect_required`, …), with the time to the upstream's answer. The ID, not the slug: a slug names an organization's server, and
   * `/metrics` may be open to anyone who can reach it; the API maps an ID to its server.
   */
  observeUpstream(serverId: string, outcome: string, seconds: number): void {
    const server = `server_id="${escapeLabel(serverId)}"`
    const key = `${server},outcome="${escapeLabel(outcome)}"`
    this.upstreamRequests.set(key, (this.upstreamRequests.get(key) ?? 0) + 1)
    observeInto(this.upstreamLatency, server, seconds)
  }

  render(): string {
    const lines = [
      '# HELP gatehouse_http_requests_total HTTP requests by method, route and status.',
      '# TYPE gatehouse_http_requests_total counter',
    ]
    for (const [labels, value] of this.requests) lines.push(`gatehouse_http_requests_total{${labels}} ${value}`)
    lines.push(
      '# HELP gatehouse_http_request_duration_seconds HTTP request latency by method and route.',
      '# TYPE gatehouse_http_request_duration_seconds histogram',
    )
    renderHistograms(lines, 'gatehouse_http_request_duration_seconds', this.latency)
    lines.push(
      '# HELP gatehouse_upstream_requests_total Requests passed to upstream MCP servers and upstream tool calls of /mcp, by server ID and outcome.',
      '# TYPE gatehouse_upstream_requests_total counter',
    )
    for (const [labels, value] of this.upstreamRequests)
      lines.push(`gatehouse_upstream_requests_total{${labels}} ${value}`)
    lines.push(
      '# HELP gatehouse_upstream_response_seconds Time until an upstream MCP server answered, by server ID.',
      '# TYPE gatehouse_upstream_response_seconds histogram',
    )
    renderHistograms(lines, 'gatehouse_upstream_response_seconds', this.upstreamLatency)
    const memory = process.memoryUsage()
    lines.push(
      '# HELP gatehouse_process_heap_used_bytes JavaScript heap in use.',
      '# TYPE gatehouse_process_heap_used_bytes gauge',
      `gatehouse_process_heap_used_bytes ${memory.heapUsed}`,
      '# HELP gatehouse_process_resident_memory_bytes Resident set size of the process.',
      '# TYPE gatehouse_process_resident_memory_bytes gauge',
      `gatehouse_process_resident_memory_bytes ${memory.rss}`,
      '# HELP gatehouse_process_start_time_seconds Start time of the process since the unix epoch.',
      '# TYPE gatehouse_process_start_time_seconds gauge',
      `gatehouse_process_start_time_seconds ${Math.floor(this.startedAt / 1000)}`,
    )
    return `${lines.join('\n')}\n`
  }
}
