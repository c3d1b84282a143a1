package search_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"unicode/utf16"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/search"
	"github.com/aichat/aichat/internal/store/storetest"
)

func stemming(on bool) apptest.Option {
	return apptest.WithConfig(func(c *config.Config) { c.SearchStemming = on })
}

// stemTexts and what each query finds in them, by index, with stemming
// off and on.
var stemTexts = []string{
	"I was running late again",  // 0
	"she runs every morning",    // 1
	"a run in the park",         // 2
	"nothing to see here",       // 3
	"Я читаю книги по вечерам",  // 4
	"вчера купил книгу",         // 5
	"книга лежит на столе",      // 6
	"runner's guide, no books",  // 7
	"The book was RUNNING away", // 8
}

var stemQueries = []struct {
	q       string
	off, on []int
}{
	{"run", []int{2}, []int{0, 1, 2, 8}},
	{"книга", []int{6}, []int{4, 5, 6}},
	{"running", []int{0, 8}, []int{0, 1, 2, 8}},
	{`"was running"`, []int{0, 8}, []int{0, 8}},
	{`"was run"`, nil, []int{0, 8}},
	{`"book was run"`, nil, []int{8}},
	{"books", []int{7}, []int{7, 8}},
	{"see", []int{3}, []int{3}},
}

// stemAnswers returns, per query, the indexes into stemTexts found
// (newest first, as the messages were sent oldest first).
func stemAnswers(t *testing.T, s *apptest.Server, user string, msgs []string) [][]int {
	t.Helper()
	var out [][]int
	for _, q := range stemQueries {
		p, err := s.App.Search.Search(context.Background(), search.Request{UserID: user, Query: q.q, Limit: 50})
		if err != nil {
			t.Fatalf("%s: %v", q.q, err)
		}
		got := []int{}
		for _, r := range p.Results {
			got = append(got, slices.Index(msgs, r.MessageID))
		}
		slices.Sort(got)
		out = append(out, got)
	}
	return out
}

func wantStem(on bool) [][]int {
	var out [][]int
	for _, q := range stemQueries {
		w := q.off
		if on {
			w = q.on
		}
		out = append(out, append([]int{}, w...))
	}
	return out
}

// TestSearchStemming: with AICHAT_SEARCH_STEMMING on, "run" finds
// "running" and "runs", "книга" finds "книги" and "книгу", phrases
// compare stems, and snippets mark the stemmed matches; off, only the
// words themselves.
func TestSearchStemming(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		dir := t.TempDir()
		for _, on := range []bool{false, true} {
			// The second start finds the first's index unstemmed: it
			// rebuilds it (the background rebuild is on).
			s := apptest.Start(t, e, inDataDir(dir), stemming(on))
			alice := s.Register(t, fmt.Sprintf("alice-%v@example.com", on))
			c := newChat(t, s, alice.AccessToken)
			var msgs []string
			for _, text := range stemTexts {
				msgs = append(msgs, send(t, s, alice.AccessToken, c, text))
			}
			flush(t, s)
			if got, want := stemAnswers(t, s, alice.User.ID, msgs), wantStem(on); !slices.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("stemming %v: %v, want %v", on, got, want)
			}
			if on {
				p, err := s.App.Search.Search(context.Background(), search.Request{UserID: alice.User.ID, Query: "run", ChatID: c})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range p.Results {
					if len(r.Highlights) != 1 {
						t.Fatalf("%q: highlights %v", r.Snippet, r.Highlights)
					}
					u := utf16.Encode([]rune(r.Snippet))
					hl := string(utf16.Decode(u[r.Highlights[0].Start:r.Highlights[0].End]))
					if !slices.Contains([]string{"running", "runs", "run", "RUNNING"}, hl) {
						t.Fatalf("%q: highlighted %q", r.Snippet, hl)
					}
				}
			}
			s.Stop()
		}
	})
}

// TestSearchStemmingSwitch: a server started with the other stemming
// setting than the index was written with starts a new index version and
// rebuilds it in the background, as after a key rotation; searches during
// the rebuild find at least what either setting alone finds in common
// and at most what either finds, and after it exactly what the new
// setting finds. Switching back works the same way.
func TestSearchStemmingSwitch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		ctx := context.Background()
		dir := t.TempDir()
		s := apptest.Start(t, e, inDataDir(dir), stemming(false), noBackgroundRebuild)
		alice := s.Register(t, "alice@example.com")
		c := newChat(t, s, alice.AccessToken)
		var msgs []string
		for _, text := range stemTexts {
			msgs = append(msgs, send(t, s, alice.AccessToken, c, text))
		}
		flush(t, s)
		if got := stemAnswers(t, s, alice.User.ID, msgs); !slices.EqualFunc(got, wantStem(false), slices.Equal) {
			t.Fatalf("before: %v, want %v", got, wantStem(false))
		}
		for _, on := range []bool{true, false} {
			s.Stop()
			s = apptest.Start(t, e, inDataDir(dir), stemming(on), noBackgroundRebuild)
			st, ok, err := s.App.Search.Status(ctx)
			if err != nil || !ok || st.Finished || st.Stemmed != on {
				t.Fatalf("stemming %v: no rebuild started: %+v %v %v", on, st, ok, err)
			}
			between := func(when string) {
				t.Helper()
				got := stemAnswers(t, s, alice.User.ID, msgs)
				lo, hi := wantStem(false), wantStem(true)
				for i := range got {
					for _, m := range lo[i] {
						if !slices.Contains(got[i], m) {
							t.Fatalf("%s: %q: %v lacks %d", when, stemQueries[i].q, got[i], m)
						}
					}
					for _, m := range got[i] {
						if !slices.Contains(hi[i], m) {
							t.Fatalf("%s: %q: %v has %d", when, stemQueries[i].q, got[i], m)
						}
					}
				}
			}
			between("rebuild not started")
			if st, err := s.App.Search.Rebuild(ctx, 4, 1); err != nil || st.Finished {
				t.Fatalf("a batch of the rebuild: %+v %v", st, err)
			}
			between("rebuild half-way")
			if st, err := s.App.Search.Rebuild(ctx, 4, 0); err != nil || !st.Finished {
				t.Fatalf("rebuild: %+v %v", st, err)
			}
			if got := stemAnswers(t, s, alice.User.ID, msgs); !slices.EqualFunc(got, wantStem(on), slices.Equal) {
				t.Fatalf("stemming %v after the rebuild: %v, want %v", on, got, wantStem(on))
			}
			checkCounts(t, s, "after switching stemming")
			if ids, err := s.App.Search.RetiredKeyIDs(ctx); err != nil || len(ids) != 0 {
				t.Fatalf("the key is still used, yet retired: %v %v", ids, err)
			}
		}
	})
}
