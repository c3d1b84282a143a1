package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestKeysRotateIndex rotates the search index key of a running server
// through the command line, twice: the server writes with the new key
// without a restart, rebuilds the index in the background, and answers
// every search the same all along.
func TestKeysRotateIndex(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		ctx := context.Background()
		dir := filepath.Join(t.TempDir(), "data")
		vars := map[string]string{"AICHAT_DATA_DIR": dir, "AICHAT_DATABASE_URL": e.URL}
		srv, logs, stop := startRun(t, vars)
		defer stop()
		_, sess := post(t, srv+"/api/v1/auth/register", `{"email":"ix@example.com","password":"correct horse battery staple"}`)
		tok := sess["access_token"].(string)
		call := authedCall(t, srv, tok)
		st, ch := call("POST", "/api/v1/chats", `{"title":"rotation","settings":{"ai_mode":"off"}}`)
		if st != 201 {
			t.Fatalf("create chat: %d %v\n%s", st, ch, logs.String())
		}
		chatID := ch["id"].(string)
		sendMsg := func(text string) string {
			st, m := call("POST", "/api/v1/chats/"+chatID+"/messages", fmt.Sprintf(`{"content":%q}`, text))
			if st != 201 {
				t.Fatalf("send: %d %v", st, m)
			}
			return m["id"].(string)
		}
		for i := range 30 {
			sendMsg(fmt.Sprintf("note %d about %s", i, []string{"apples", "pears", "plums"}[i%3]))
		}
		search := func(q string) []string {
			t.Helper()
			var out []string
			cursor := ""
			for {
				st, p := call("GET", "/api/v1/search?"+url.Values{"q": {q}, "limit": {"7"}, "cursor": {cursor}}.Encode(), "")
				if st != 200 {
					t.Fatalf("search %q: %d %v", q, st, p)
				}
				for _, r := range p["results"].([]any) {
					out = append(out, r.(map[string]any)["message_id"].(string))
				}
				next, _ := p["next_cursor"].(string)
				if next == "" {
					return out
				}
				cursor = next
			}
		}
		queries := []string{"note", "apples", "pears note", `"about plums"`, "quinces"}
		want := map[string][]string{}
		waitFor := func(what string, ok func() bool) {
			t.Helper()
			for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: not within 15 s\n%s", what, logs.String())
				}
			}
		}
		// Messages are indexed in the background, a moment after they are sent.
		waitFor("30 messages indexed", func() bool { return len(search("note")) == 30 })
		for _, q := range queries {
			want[q] = search(q)
		}
		same := func(when string) {
			t.Helper()
			for _, q := range queries {
				if got := search(q); !slices.Equal(got, want[q]) {
					t.Errorf("%s: %q finds %d, want %d", when, q, len(got), len(want[q]))
				}
			}
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		db, err := store.Open(ctx, e.URL, dir, log)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		versionOf := func(msg string) []int {
			var v []int
			db.Raw("SELECT DISTINCT key_version FROM message_tokens WHERE message_id = ?", msg).Scan(&v)
			return v
		}
		finished := func() bool {
			var n int64
			db.Raw("SELECT COUNT(*) FROM search_rebuilds WHERE finished_at IS NULL").Scan(&n)
			return n == 0
		}
		before, _ := secrets.LoadFile(dir)

		var out, errOut lockedBuffer
		if err := app.Run(ctx, []string{"keys", "rotate", "--index"}, env(vars), &out, &errOut); err != nil {
			t.Fatalf("keys rotate --index: %v\n%s%s", err, out.String(), errOut.String())
		}
		after, _ := secrets.LoadFile(dir)
		if len(after.Index) != 2 || after.Index[1].ID != before.Index[0].ID {
			t.Fatalf("index keyring after rotation has %d keys, want the new one first and the old one kept", len(after.Index))
		}
		if !strings.Contains(out.String(), "index key "+after.Index[0].ID+" is current (version 2)") {
			t.Fatalf("rotate output: %q", out.String())
		}
		// The running server writes with the new key at once (it reads the
		// key file when the database names a key it lacks), and searches
		// find old and new rows alike while it rebuilds in the background.
		same("right after the rotation")
		m := sendMsg("a note about quinces")
		want["note"] = append([]string{m}, want["note"]...)
		want["quinces"] = []string{m}
		waitFor("the new message indexed", func() bool { return len(search("quinces")) == 1 })
		if v := versionOf(m); !slices.Equal(v, []int{2}) {
			t.Fatalf("a message sent after the rotation has index versions %v, want [2]", v)
		}
		same("during the rebuild")
		waitFor("the running server finishes the rebuild", finished)
		same("after the rebuild")
		var old int64
		db.Raw("SELECT COUNT(*) FROM message_tokens WHERE key_version <> 2").Scan(&old)
		if old != 0 {
			t.Fatalf("%d rows of the old version after the rebuild", old)
		}

		// A second rotation, waiting for the rebuild: the retired key
		// leaves the key file.
		out = lockedBuffer{}
		if err := app.Run(ctx, []string{"keys", "rotate", "--index", "--wait", "--batch", "4"}, env(vars), &out, &errOut); err != nil {
			t.Fatalf("second rotation: %v\n%s%s", err, out.String(), errOut.String())
		}
		third, _ := secrets.LoadFile(dir)
		for _, s := range []string{
			"removed index key(s) " + before.Index[0].ID,
			"index key " + third.Index[0].ID + " is current (version 3)",
			"search index rebuilt with key " + third.Index[0].ID + ": 31 messages re-indexed",
			"removed index key(s) " + after.Index[0].ID,
		} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("second rotation output lacks %q:\n%s", s, out.String())
			}
		}
		if len(third.Index) != 1 {
			t.Errorf("index keyring after the second rotation: %d keys, want only the new one", len(third.Index))
		}
		same("after the second rotation")
		if !strings.Contains(logs.String(), "search: index keys reloaded") {
			t.Errorf("the running server never reloaded its index keys:\n%s", logs.String())
		}
	})
}

// TestKeysRotateIndexFromEnv: with AICHAT_INDEX_KEYS the command prints
// the value to set, and records the rotation once the new key is first.
func TestKeysRotateIndexFromEnv(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	old := secrets.NewKey()
	oldEnv := "k1=" + encodeKey(old)
	vars := map[string]string{"AICHAT_DATA_DIR": dir, "AICHAT_INDEX_KEYS": oldEnv}
	var out, errOut lockedBuffer
	// The first start (here, of the command) records k1 as the index key
	// in use; it is already first, so the command says what to set.
	if err := app.Run(ctx, []string{"keys", "rotate", "--index"}, env(vars), &out, &errOut); err != nil {
		t.Fatalf("rotate: %v\n%s", err, errOut.String())
	}
	set := regexp.MustCompile(`(?m)^  AICHAT_INDEX_KEYS=(\S+)$`).FindStringSubmatch(out.String())
	if set == nil || !strings.HasSuffix(set[1], ","+oldEnv) {
		t.Fatalf("rotate with AICHAT_INDEX_KEYS did not print the value to set:\n%s", out.String())
	}
	vars["AICHAT_INDEX_KEYS"] = set[1]
	newID, _, _ := strings.Cut(set[1], "=")
	out = lockedBuffer{}
	if err := app.Run(ctx, []string{"keys", "rotate", "--index", "--wait"}, env(vars), &out, &errOut); err != nil {
		t.Fatalf("rotate with the new key first: %v\n%s%s", err, out.String(), errOut.String())
	}
	for _, s := range []string{"index key " + newID + " is current (version 2)", "search index rebuilt with key " + newID,
		"no index row uses key(s) k1 any more"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}

func encodeKey(k secrets.Key) string { return base64.StdEncoding.EncodeToString(k.Secret) }
