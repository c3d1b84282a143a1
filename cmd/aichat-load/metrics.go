package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// promText holds one scrape of a Prometheus text exposition: each series,
// keyed exactly as exposed ("name" or "name{label=\"v\"}"), to its value.
type promText map[string]float64

// parseProm reads the text format; comments, blank lines and timestamps
// are skipped, and a malformed line is an error.
func parseProm(r io.Reader) (promText, error) {
	out := promText{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The series ends at the last '}' when it has labels (label values
		// may hold spaces), else at the first space.
		var key, rest string
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			key, rest = line[:i+1], strings.TrimSpace(line[i+1:])
		} else {
			k, r, ok := strings.Cut(line, " ")
			if !ok {
				return nil, fmt.Errorf("metrics: no value in %q", line)
			}
			key, rest = k, strings.TrimSpace(r)
		}
		val, _, _ := strings.Cut(rest, " ")
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: bad value in %q", line)
		}
		out[key] = v
	}
	return out, sc.Err()
}

// sum adds up every series of the metric name, whatever its labels.
func (p promText) sum(name string) float64 {
	var s float64
	for k, v := range p {
		if k == name || (strings.HasPrefix(k, name+"{")) {
			s += v
		}
	}
	return s
}

// heapLive estimates the live heap after the last collection from the
// heap goal the collector set then (goal = live × (1 + GOGC/100)). Unlike
// heap_inuse it does not count garbage, so it moves far less between
// scrapes; the servers expose no way to force a collection.
func (p promText) heapLive() float64 {
	gogc := p.sum("go_gc_gogc_percent")
	if gogc <= 0 {
		gogc = 100
	}
	return p.sum("go_memstats_next_gc_bytes") / (1 + gogc/100)
}

// byLabel returns the metric's series keyed by the value of one label.
func (p promText) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	prefix := name + "{"
	for k, v := range p {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		lv := labelValue(k[len(prefix):len(k)-1], label)
		out[lv] += v
	}
	return out
}

func labelValue(labels, name string) string {
	for _, part := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// serverSnap is one scrape of a server's /metrics.
type serverSnap struct {
	URL string
	At  time.Time
	M   promText
}

func scrape(ctx context.Context, hc *http.Client, base string) (serverSnap, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return serverSnap{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return serverSnap{}, fmt.Errorf("scrape %s/metrics: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverSnap{}, fmt.Errorf("scrape %s/metrics: HTTP %d", base, resp.StatusCode)
	}
	m, err := parseProm(resp.Body)
	if err != nil {
		return serverSnap{}, err
	}
	return serverSnap{URL: base, At: time.Now(), M: m}, nil
}

// ServerReport compares two scrapes of one server.
type ServerReport struct {
	URL        string  `json:"url"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"` // of one core
	// process_cpu_seconds_total at each scrape (CPUSeconds is the difference).
	CPUSecondsBefore float64 `json:"cpu_seconds_before"`
	CPUSecondsAfter  float64 `json:"cpu_seconds_after"`

	RSSBefore        float64 `json:"rss_before_bytes"`
	RSSAfter         float64 `json:"rss_after_bytes"`
	HeapAllocBefore  float64 `json:"heap_alloc_before_bytes"` // go_memstats_heap_alloc_bytes: live + not yet collected
	HeapAllocAfter   float64 `json:"heap_alloc_after_bytes"`
	HeapInuseBefore  float64 `json:"heap_inuse_before_bytes"`
	HeapInuseAfter   float64 `json:"heap_inuse_after_bytes"`
	StackInuseBefore float64 `json:"stack_inuse_before_bytes"`
	StackInuseAfter  float64 `json:"stack_inuse_after_bytes"`
	HeapLiveBefore   float64 `json:"heap_live_before_bytes"` // estimated: heap goal / (1 + GOGC/100)
	HeapLiveAfter    float64 `json:"heap_live_after_bytes"`
	GoSysBefore      float64 `json:"go_sys_before_bytes"`
	GoSysAfter       float64 `json:"go_sys_after_bytes"`
	GoroutinesBefore float64 `json:"goroutines_before"`
	GoroutinesAfter  float64 `json:"goroutines_after"`
	ConnsBefore      float64 `json:"connections_before"`
	ConnsAfter       float64 `json:"connections_after"`
	OpenFDsBefore    float64 `json:"open_fds_before"`
	OpenFDsAfter     float64 `json:"open_fds_after"`
	MaxFDs           float64 `json:"max_fds"`
	GCCount          float64 `json:"gc_cycles"`

	EventsSent    map[string]float64 `json:"events_sent"`
	Commands      map[string]float64 `json:"commands"`
	Disconnects   map[string]float64 `json:"disconnects"`
	QueueDrops    float64            `json:"queue_drops"`
	PublishCount  float64            `json:"broker_publishes"`
	PublishMeanUS float64            `json:"broker_publish_mean_us"`
	PublishErrors float64            `json:"broker_publish_errors"`
}

func compareSnaps(a, b serverSnap) ServerReport {
	d := func(name string) float64 { return b.M.sum(name) - a.M.sum(name) }
	dl := func(name, label string) map[string]float64 {
		out := map[string]float64{}
		before := a.M.byLabel(name, label)
		for k, v := range b.M.byLabel(name, label) {
			if dv := v - before[k]; dv != 0 {
				out[k] = dv
			}
		}
		return out
	}
	r := ServerReport{
		URL:              a.URL,
		Seconds:          b.At.Sub(a.At).Seconds(),
		CPUSeconds:       d("process_cpu_seconds_total"),
		CPUSecondsBefore: a.M.sum("process_cpu_seconds_total"),
		CPUSecondsAfter:  b.M.sum("process_cpu_seconds_total"),
		HeapAllocBefore:  a.M.sum("go_memstats_heap_alloc_bytes"),
		HeapAllocAfter:   b.M.sum("go_memstats_heap_alloc_bytes"),
		OpenFDsBefore:    a.M.sum("process_open_fds"),
		RSSBefore:        a.M.sum("process_resident_memory_bytes"),
		RSSAfter:         b.M.sum("process_resident_memory_bytes"),
		HeapInuseBefore:  a.M.sum("go_memstats_heap_inuse_bytes"),
		HeapInuseAfter:   b.M.sum("go_memstats_heap_inuse_bytes"),
		StackInuseBefore: a.M.sum("go_memstats_stack_inuse_bytes"),
		StackInuseAfter:  b.M.sum("go_memstats_stack_inuse_bytes"),
		HeapLiveBefore:   a.M.heapLive(),
		HeapLiveAfter:    b.M.heapLive(),
		GoSysBefore:      a.M.sum("go_memstats_sys_bytes"),
		GoSysAfter:       b.M.sum("go_memstats_sys_bytes"),
		GoroutinesBefore: a.M.sum("go_goroutines"),
		GoroutinesAfter:  b.M.sum("go_goroutines"),
		ConnsBefore:      a.M.sum("aichat_ws_connections"),
		ConnsAfter:       b.M.sum("aichat_ws_connections"),
		OpenFDsAfter:     b.M.sum("process_open_fds"),
		MaxFDs:           b.M.sum("process_max_fds"),
		GCCount:          d("go_gc_duration_seconds_count"),
		EventsSent:       dl("aichat_ws_events_sent_total", "type"),
		Commands:         dl("aichat_ws_commands_total", "command"),
		Disconnects:      dl("aichat_ws_disconnects_total", "reason"),
		QueueDrops:       d("aichat_ws_queue_drops_total"),
		PublishCount:     d("aichat_broker_publish_seconds_count"),
		PublishErrors:    d("aichat_broker_publish_errors_total"),
	}
	if r.Seconds > 0 {
		r.CPUPercent = 100 * r.CPUSeconds / r.Seconds
	}
	if r.PublishCount > 0 {
		r.PublishMeanUS = 1e6 * d("aichat_broker_publish_seconds_sum") / r.PublishCount
	}
	return r
}

// scrapeAll scrapes every server; a failure is returned with the URL.
func scrapeAll(ctx context.Context, hc *http.Client, urls []string) ([]serverSnap, error) {
	out := make([]serverSnap, len(urls))
	for i, u := range urls {
		s, err := scrape(ctx, hc, u)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func compareAll(a, b []serverSnap) []ServerReport {
	out := make([]ServerReport, len(a))
	for i := range a {
		out[i] = compareSnaps(a[i], b[i])
	}
	return out
}

// sortedKeys lists a map's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// BucketSummary is a server histogram over the window: the difference of
// its buckets between two scrapes, with quantiles interpolated linearly
// inside a bucket (as Prometheus' histogram_quantile does), and the share
// of observations at or under each bucket's bound that the report names.
type BucketSummary struct {
	Count  float64            `json:"count"`
	P50    float64            `json:"p50_seconds"`
	P90    float64            `json:"p90_seconds"`
	P99    float64            `json:"p99_seconds"`
	P999   float64            `json:"p999_seconds"`
	Within map[string]float64 `json:"share_within"` // bucket bound (seconds, as exposed) → share of observations at or under it
}

// histWindow summarizes histogram name (series filter: e.g. `type="ai_delta"`,
// or "" for an unlabeled one) between scrapes a and b; ok is false when
// the server exposes no such histogram or nothing was observed.
func histWindow(a, b promText, name, filter string) (BucketSummary, bool) {
	type bucket struct {
		le  float64
		key string
		n   float64
	}
	// Every series that matches adds to its bucket (sum by le, as the
	// dashboard does): a histogram's other labels split it into series.
	byLE := map[string]*bucket{}
	prefix := name + "_bucket{"
	for k, v := range b {
		if !strings.HasPrefix(k, prefix) || (filter != "" && !strings.Contains(k, filter)) {
			continue
		}
		le := labelValue(k[len(prefix):len(k)-1], "le")
		f, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		if byLE[le] == nil {
			byLE[le] = &bucket{le: f, key: le}
		}
		byLE[le].n += v - a[k]
	}
	bs := make([]bucket, 0, len(byLE))
	for _, b := range byLE {
		bs = append(bs, *b)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return BucketSummary{}, false
	}
	total := bs[len(bs)-1].n
	q := func(p float64) float64 {
		rank := p * total
		lo, below := 0.0, 0.0
		for _, x := range bs {
			if x.n >= rank {
				if x.le > 1e300 { // +Inf: the highest finite bound is all we know
					return lo
				}
				if x.n == below {
					return x.le
				}
				return lo + (x.le-lo)*(rank-below)/(x.n-below)
			}
			lo, below = x.le, x.n
		}
		return lo
	}
	s := BucketSummary{Count: total, P50: q(0.5), P90: q(0.9), P99: q(0.99), P999: q(0.999), Within: map[string]float64{}}
	for _, x := range bs {
		if x.le < 1e300 {
			s.Within[x.key] = x.n / total
		}
	}
	return s, true
}
