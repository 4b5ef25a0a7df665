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

    let histogram = this.latency.get(latencyKey)
    if (!histogram) {
      histogram = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }
      this.latency.set(latencyKey, histogram)
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) histogram.counts[i]++
    histogram.sum += seconds
    histogram.count++
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
    for (const [labels, histogram] of this.latency) {
      BUCKETS.forEach((bound, i) =>
        lines.push(`gatehouse_http_request_duration_seconds_bucket{${labels},le="${bound}"} ${histogram.counts[i]}`),
      )
      lines.push(`gatehouse_http_request_duration_seconds_bucket{${labels},le="+Inf"} ${histogram.count}`)
      lines.push(`gatehouse_http_request_duration_seconds_sum{${labels}} ${histogram.sum}`)
      lines.push(`gatehouse_http_request_duration_seconds_count{${labels}} ${histogram.count}`)
    }
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
