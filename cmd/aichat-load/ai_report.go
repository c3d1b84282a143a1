package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

func (r *AIResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n== ai: %d streams at once (%.2f started/s over %d chats), %d tokens at %.0f tokens/s each, upstream TTFT %s, history %d × %d B, depth %d, %s (+%s warm-up)\n",
		r.Streams, r.Rate, r.Users, r.Tokens, r.TokenRate, r.TTFT, r.History, r.HistorySize, r.Depth, r.Duration, r.Warmup)
	latencyTable(w, []namedSummary{
		{"(1) send→upstream request", r.SendToUpstream},
		{"(2) token relay (upstream write→ai_delta)", r.TokenRelay},
		{"(3) added time to first token", r.AddedTTFT},
		{"    client TTFT (send→first ai_delta)", r.ClientTTFT},
		{"    upstream TTFT (request→first token)", r.UpstreamTTFT},
		{"    first token's relay", r.FirstRelay},
		{"send→ack", r.SendToAck},
		{"send→ai_start", r.SendToStart},
		{"last token→ai_done", r.LastToDone},
		{"generator: stream start lag", r.StartLag},
		{"generator: upstream token lag", r.UpstreamPaceLag},
	})
	fmt.Fprintf(w, "streams: due %d, sent %d, skipped (chat still busy) %d, generator drops %d, write errors %d; measured streams ended: %s, unfinished %d\n",
		r.Due, r.Sent, r.BusySkipped, r.GeneratorDrops, r.WriteErrors, fmtCounts(r.Outcomes), r.Unfinished)
	fmt.Fprintf(w, "tokens (measured streams): written %d, relayed %d, missing %d, offset gaps %d, stray deltas %d; %.0f tokens/s and %.0f ai_delta/s read during the window\n",
		r.TokensWritten, r.TokensReceived, r.TokensMissing, r.OffsetGaps, r.StrayDeltas, r.TokensPerSec, r.DeltasPerSec)
	fmt.Fprintf(w, "upstream: %d requests over %d TCP connections, %d unknown, %d canceled; streams at once during the window: mean %.1f, max %d\n",
		r.UpstreamRequests, r.UpstreamConns, r.UpstreamUnknown, r.UpstreamCanceled, r.ConcMean, r.ConcMax)
	var ai []string
	for _, k := range sortedKeys(r.ServerAI) {
		ai = append(ai, fmt.Sprintf("%s %.0f", k, r.ServerAI[k]))
	}
	fmt.Fprintf(w, "server (window): %s\n", strings.Join(ai, ", "))
	printServerHist(w, "message received → model request written", r.ServerRequest, "0.005", "5 ms")
	printServerHist(w, "ai_delta event → frame written", r.ServerRelay, "0.001", "1 ms")
	printServerHist(w, "model chunk in the kernel → frame written", r.ServerArrival, "0.001", "1 ms")
	fmt.Fprintf(w, "server CPU per relayed token %.1f µs, per answer %.0f µs; RSS idle (sockets open) %s\n",
		r.CPUPerTokenUS, r.CPUPerStreamUS, fmtBytes(r.ServerIdleRSS))
	fmt.Fprintf(w, "disconnects: %d (%s); frames received: %s\n", r.Disconnects, fmtCounts(r.DisconnectReasons), fmtCounts(r.FramesByType))
	printServers(w, r.Servers)
	printClient(w, r.Client)
	printMachine(w, r.Machine)
}

// fmtSecs prints seconds as the latency tables do.
func fmtSecs(s float64) string { return fmtUS(int64(math.Round(s * 1e6))) }

// printServerHist prints one of the server's own histograms (nil: the
// server does not have it) with its share within bound (a bucket's le).
func printServerHist(w io.Writer, what string, h *BucketSummary, bound, boundText string) {
	if h == nil {
		return
	}
	fmt.Fprintf(w, "server's own histogram, %s: %.0f, p50 %s, p90 %s, p99 %s, p99.9 %s; within %s %.2f %%\n",
		what, h.Count, fmtSecs(h.P50), fmtSecs(h.P90), fmtSecs(h.P99), fmtSecs(h.P999), boundText, 100*h.Within[bound])
}
