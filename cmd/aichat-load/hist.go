package main

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms record microseconds from 1 µs to histMax with three
// significant digits (a recorded value is within 0.1 % of the truth).
const histMax = 120 * time.Second

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(histMax/time.Microsecond), 3)
}

// recordDur records d into h, clamping to the histogram's range so that a
// value outside it is counted (as the extreme) rather than lost.
func recordDur(h *hdrhistogram.Histogram, d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < 1 {
		us = 1
	}
	if maxUS := int64(histMax / time.Microsecond); us > maxUS {
		us = maxUS
	}
	h.RecordValue(us)
}

// Summary is what a report shows of one histogram. Times are in
// microseconds in JSON (the _us fields) so that no precision is lost.
type Summary struct {
	Count  int64   `json:"count"`
	MeanUS float64 `json:"mean_us"`
	P50US  int64   `json:"p50_us"`
	P90US  int64   `json:"p90_us"`
	P99US  int64   `json:"p99_us"`
	P999US int64   `json:"p99_9_us"`
	MaxUS  int64   `json:"max_us"`
}

func summarize(h *hdrhistogram.Histogram) Summary {
	if h == nil || h.TotalCount() == 0 {
		return Summary{}
	}
	return Summary{
		Count:  h.TotalCount(),
		MeanUS: h.Mean(),
		P50US:  h.ValueAtQuantile(50),
		P90US:  h.ValueAtQuantile(90),
		P99US:  h.ValueAtQuantile(99),
		P999US: h.ValueAtQuantile(99.9),
		MaxUS:  h.Max(),
	}
}

// stripedHist is a histogram many goroutines record into at once: each
// caller picks a stripe (say, its connection number), so recorders rarely
// share a lock. Merged gives the whole.
type stripedHist struct {
	stripes []histStripe
}

type histStripe struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte // keep stripes on separate cache lines
}

func newStripedHist(n int) *stripedHist {
	if n < 1 {
		n = 1
	}
	s := &stripedHist{stripes: make([]histStripe, n)}
	for i := range s.stripes {
		s.stripes[i].h = newHist()
	}
	return s
}

func (s *stripedHist) record(stripe int, d time.Duration) {
	st := &s.stripes[stripe%len(s.stripes)]
	st.mu.Lock()
	recordDur(st.h, d)
	st.mu.Unlock()
}

func (s *stripedHist) merged() *hdrhistogram.Histogram {
	out := newHist()
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		out.Merge(st.h)
		st.mu.Unlock()
	}
	return out
}

func (s *stripedHist) summary() Summary { return summarize(s.merged()) }
