package ai

import (
	"time"

	"github.com/aichat/aichat/internal/ai/llm"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the assistant's Prometheus collectors.
type Metrics struct {
	Started        prometheus.Counter
	Finished       *prometheus.CounterVec // by outcome: complete, stopped, or an error code
	Active         prometheus.Gauge
	Deltas         prometheus.Counter
	TimeToFirst    prometheus.Histogram
	RequestDelay   prometheus.Histogram
	Duration       prometheus.Histogram
	TokensIn       prometheus.Counter
	TokensOut      prometheus.Counter
	UpstreamErrors *prometheus.CounterVec // by llm.Kind
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	secs := []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120}
	m := &Metrics{
		Started: prometheus.NewCounter(prometheus.CounterOpts{Name: "aichat_ai_generations_started_total",
			Help: "Assistant answers started."}),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aichat_ai_generations_finished_total",
			Help: "Assistant answers ended, by outcome."}, []string{"outcome"}),
		Active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "aichat_ai_active_streams",
			Help: "Answers streaming on this instance."}),
		Deltas: prometheus.NewCounter(prometheus.CounterOpts{Name: "aichat_ai_deltas_sent_total",
			Help: "ai_delta events published."}),
		TimeToFirst: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aichat_ai_time_to_first_token_seconds",
			Help: "From the upstream request to its first token.", Buckets: secs}),
		RequestDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aichat_ai_request_delay_seconds",
			Help: "From a person's message reaching the server to the model's request written to the provider: " +
				"storing the message, reading the history, building the prompt.",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 1}}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aichat_ai_generation_seconds",
			Help: "Whole answers, start to end.", Buckets: secs}),
		TokensIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "aichat_ai_prompt_tokens_total",
			Help: "Prompt tokens reported by providers."}),
		TokensOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "aichat_ai_completion_tokens_total",
			Help: "Completion tokens reported by providers."}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aichat_ai_upstream_errors_total",
			Help: "Provider errors, by kind."}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.Started, m.Finished, m.Active, m.Deltas, m.TimeToFirst, m.RequestDelay, m.Duration,
			m.TokensIn, m.TokensOut, m.UpstreamErrors)
	}
	return m
}

func (s *Service) observe(t *turn, res *llm.Result, err error, took time.Duration) {
	s.opt.Metrics.Finished.WithLabelValues(outcomeOf(err)).Inc()
	s.opt.Metrics.Duration.Observe(took.Seconds())
	if res != nil && res.TimeToFirst > 0 {
		s.opt.Metrics.TimeToFirst.Observe(res.TimeToFirst.Seconds())
	}
	if got := t.question.ReceivedAt(); res != nil && !got.IsZero() && !res.Sent.IsZero() {
		// got may be a kernel stamp (wall clock only): never below 0.
		s.opt.Metrics.RequestDelay.Observe(max(0, res.Sent.Sub(got).Seconds()))
	}
	if err != nil && err != errStopped {
		if k := llm.KindOf(err); k != "" {
			s.opt.Metrics.UpstreamErrors.WithLabelValues(string(k)).Inc()
			s.log.Warn("ai: answer failed", "chat_id", t.chatID, "provider", t.client.Provider().Name,
				"model", t.model, "kind", string(k), "err", err)
		} else {
			s.log.Error("ai: answer failed", "chat_id", t.chatID, "err", err)
		}
	}
}
