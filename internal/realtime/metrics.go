package realtime

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the hub's Prometheus collectors.
type Metrics struct {
	Connections    prometheus.Gauge
	Connects       prometheus.Counter
	Disconnects    *prometheus.CounterVec // by reason
	EventsSent     *prometheus.CounterVec // by event type
	FrameDelay     *prometheus.HistogramVec
	ArrivalDelay   *prometheus.HistogramVec // by event type; only events that know their arrival
	Commands       *prometheus.CounterVec   // by command
	QueueDrops     prometheus.Counter
	Replayed       prometheus.Counter
	PublishSeconds prometheus.Histogram
	PublishErrors  prometheus.Counter

	byType sync.Map // event type → *typeMetrics
}

// typeMetrics are one event type's collectors, looked up once: the writer
// counts and times every frame, and WithLabelValues hashes the label and
// takes the vector's lock each time.
type typeMetrics struct {
	sent  prometheus.Counter
	delay prometheus.Observer

	// The arrival series exists only for a type that has been timed so.
	arrivalOnce sync.Once
	arrival     prometheus.Observer
}

func (m *Metrics) observeArrival(typ string, t *typeMetrics, seconds float64) {
	t.arrivalOnce.Do(func() { t.arrival = m.ArrivalDelay.WithLabelValues(typ) })
	t.arrival.Observe(seconds)
}

func (m *Metrics) ofType(typ string) *typeMetrics {
	if t, ok := m.byType.Load(typ); ok {
		return t.(*typeMetrics)
	}
	t, _ := m.byType.LoadOrStore(typ, &typeMetrics{sent: m.EventsSent.WithLabelValues(typ), delay: m.FrameDelay.WithLabelValues(typ)})
	return t.(*typeMetrics)
}

var frameDelayBuckets = []float64{0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered, as in tests that start several hubs).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "aichat_ws_connections",
			Help: "Open WebSocket connections on this instance."}),
		Connects: prometheus.NewCounter(prometheus.CounterOpts{Name: "aichat_ws_connects_total",
			Help: "WebSocket connections accepted."}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aichat_ws_disconnects_total",
			Help: "WebSocket connections ended, by reason."}, []string{"reason"}),
		EventsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aichat_ws_events_sent_total",
			Help: "Frames written to sockets, by event type."}, []string{"type"}),
		FrameDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aichat_ws_frame_delay_seconds",
			Help: "Time an event spends in this instance, from the hub getting it (published here, or " +
				"arriving from the broker) to its frame written to the socket, by event type.",
			Buckets: frameDelayBuckets}, []string{"type"}),
		ArrivalDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aichat_ws_arrival_delay_seconds",
			Help: "Time from what caused an event reaching this machine (ai_delta: the kernel receiving the " +
				"model's chunk, where it stamps it, else the server reading it; with coalescing, the oldest " +
				"chunk in the delta) to its frame written to the socket, by event type.",
			Buckets: frameDelayBuckets}, []string{"type"}),
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aichat_ws_commands_total",
			Help: "Commands received from sockets, by command."}, []string{"command"}),
		QueueDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "aichat_ws_queue_drops_total",
			Help: "Sockets dropped because their send queue was full."}),
		Replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "aichat_ws_replayed_messages_total",
			Help: "Messages replayed from the database by resume."}),
		PublishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aichat_broker_publish_seconds",
			Help:    "Time to publish one event to the broker.",
			Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1}}),
		PublishErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "aichat_broker_publish_errors_total",
			Help: "Events the broker failed to publish."}),
	}
	if reg != nil {
		reg.MustRegister(m.Connections, m.Connects, m.Disconnects, m.EventsSent, m.FrameDelay, m.ArrivalDelay, m.Commands,
			m.QueueDrops, m.Replayed, m.PublishSeconds, m.PublishErrors)
	}
	return m
}
