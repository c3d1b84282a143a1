package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/redistest"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestClusterAIStopAndResume: an answer generated on instance 1 streams to
// a member on instance 2; a socket that resumes on instance 2 mid-answer
// gets the text so far from instance 1; and a stop sent to instance 2
// reaches the generation on instance 1, which keeps the partial text.
func TestClusterAIStopAndResume(t *testing.T) {
	up := llmtest.NewServer(t)
	up.SetModels("gpt-test")
	words := strings.Repeat("word ", 400)
	up.SetDefault(llmtest.Script{Text: words, TokenDelay: 15 * time.Millisecond})
	s1, s2 := aiCluster(t, up, nil)
	alice, bob, chatID := clusterChat(t, s1, s2)
	if r := s1.Do(t, "PATCH", "/api/v1/chats/"+chatID, alice.AccessToken,
		map[string]any{"settings": map[string]any{"ai_mode": "always"}}); r.Status != http.StatusOK {
		t.Fatalf("ai_mode always: %d %s", r.Status, r.Body)
	}
	a, _ := s1.Connect(t, alice.AccessToken, "")
	b, _ := s2.Connect(t, bob.AccessToken, "")

	// Alice asks on instance 1: the generation runs there.
	a.Send(t, "send_message", "q", map[string]any{"chat_id": chatID, "content": "tell me a long story", "client_id": "q1"})
	var start struct {
		MessageID string `json:"message_id"`
		Seq       int64  `json:"seq"`
	}
	b.Expect(t, "ai_start").Decode(t, &start)
	b.Expect(t, "ai_delta") // bob on instance 2 sees it stream

	// Bob reloads on instance 2 mid-answer: after the replay he gets the
	// text so far (offset 0), generated on instance 1. Instance 1 answers
	// the snapshot request through Redis, so live deltas published before
	// it got the request may arrive first: they start past the text the
	// client has, and clients drop such gaps (docs/protocol.md, ai_delta).
	// After the snapshot the deltas continue exactly where it ended.
	b2, _ := s2.Connect(t, bob.AccessToken, "resume=1")
	b2.Send(t, "resume", "r", map[string]any{"chats": map[string]int64{chatID: start.Seq - 1}})
	b2.Expect(t, "resumed")
	type delta struct {
		Offset int    `json:"offset"`
		Delta  string `json:"delta"`
	}
	var snap delta
	for gaps := 0; ; gaps++ {
		b2.Expect(t, "ai_delta").Decode(t, &snap)
		if snap.Offset == 0 {
			break
		}
		if gaps == 20 {
			t.Fatalf("resume mid-answer: no snapshot from offset 0 after %d live deltas", gaps)
		}
	}
	if !strings.HasPrefix(words, snap.Delta) || snap.Delta == "" {
		t.Fatalf("resume mid-answer: snapshot %q, want the text so far", snap.Delta)
	}
	var next delta
	b2.Expect(t, "ai_delta").Decode(t, &next)
	if next.Offset != len(snap.Delta) {
		t.Fatalf("resume mid-answer: the delta after a %d-byte snapshot starts at %d", len(snap.Delta), next.Offset)
	}

	// Bob stops it through instance 2's REST API.
	if r := s2.Do(t, "POST", "/api/v1/chats/"+chatID+"/ai/stop", bob.AccessToken, nil); r.Status != http.StatusAccepted {
		t.Fatalf("stop on instance 2: %d %s", r.Status, r.Body)
	}
	var done struct {
		Status  string `json:"status"`
		Content string `json:"content"`
	}
	b.Expect(t, "ai_done").Decode(t, &done)
	if done.Status != "stopped" || done.Content == "" || len(done.Content) >= len(words) {
		t.Fatalf("ai_done after a stop from the other instance: status %q, %d of %d bytes", done.Status, len(done.Content), len(words))
	}
	select {
	case <-up.Last().ContextDone():
	case <-time.After(2 * time.Second):
		t.Fatal("the upstream request was not cancelled by a stop from the other instance")
	}
	// The stored answer is the partial text, stopped, on both instances.
	for _, s := range []*apptest.Server{s1, s2} {
		var page struct {
			Messages []struct {
				Seq     int64  `json:"seq"`
				Status  string `json:"status"`
				Content string `json:"content"`
			} `json:"messages"`
		}
		r := s.Do(t, "GET", "/api/v1/chats/"+chatID+"/messages", alice.AccessToken, nil)
		if err := json.Unmarshal(r.Body, &page); err != nil || len(page.Messages) == 0 {
			t.Fatalf("history: %v %s", err, r.Body)
		}
		m := page.Messages[0]
		if m.Seq != start.Seq || m.Status != "stopped" || m.Content != done.Content {
			t.Fatalf("stored answer: seq %d %s %d bytes, want seq %d stopped with the partial text", m.Seq, m.Status, len(m.Content), start.Seq)
		}
	}
}

// aiCluster starts two instances on one PostgreSQL schema and the shared
// Redis, with the same keys and the fake model up; more adjusts both
// configurations (nil: nothing).
func aiCluster(t *testing.T, up *llmtest.Server, more func(*config.Config)) (*apptest.Server, *apptest.Server) {
	t.Helper()
	url, prefix := redistest.Shared(t)
	e := storetest.Postgres(t)
	jwt, enc, idx := "k1="+clusterKey(), "e1="+clusterKey(), "i1="+clusterKey()
	opts := []apptest.Option{
		apptest.WithRedis(url, prefix),
		apptest.WithConfig(func(c *config.Config) {
			c.JWTKeys, c.EncryptionKeys, c.IndexKeys = jwt, enc, idx
			if more != nil {
				more(c)
			}
		}),
		apptest.WithAI(up.URL),
	}
	return apptest.Start(t, e, opts...), apptest.Start(t, e, opts...)
}
