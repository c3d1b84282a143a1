package app_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app"
	"github.com/aichat/aichat/internal/secrets"
)

// TestKeysRotate rotates the encryption key while a server is running: every
// row ends up sealed with the new key, and the running server keeps reading
// old and re-sealed rows alike.
func TestKeysRotate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	url, logs, stop := startRun(t, map[string]string{"AICHAT_DATA_DIR": dir})
	defer stop()
	_, sess := post(t, url+"/api/v1/auth/register", `{"email":"rot@example.com","password":"correct horse battery staple"}`)
	tok := sess["access_token"].(string)
	call := authedCall(t, url, tok)
	st, ch := call("POST", "/api/v1/chats", `{"title":"before rotation","settings":{"context":"secret context"}}`)
	if st != 201 {
		t.Fatalf("create chat: %d %v\n%s", st, ch, logs.String())
	}
	id := ch["id"].(string)
	for i := 0; i < 30; i++ {
		if st, m := call("POST", "/api/v1/chats/"+id+"/messages", fmt.Sprintf(`{"content":"message %d"}`, i)); st != 201 {
			t.Fatalf("send: %d %v", st, m)
		}
	}
	before, _ := secrets.LoadFile(dir)

	var out, errOut lockedBuffer
	err := app.Run(context.Background(), []string{"keys", "rotate", "--batch", "7"},
		env(map[string]string{"AICHAT_DATA_DIR": dir}), &out, &errOut)
	if err != nil {
		t.Fatalf("keys rotate: %v\n%s%s", err, out.String(), errOut.String())
	}
	after, _ := secrets.LoadFile(dir)
	if len(after.Encryption) != 2 || after.Encryption[1].ID != before.Encryption[0].ID {
		t.Fatalf("keyring after rotation = %d keys, want the new key first and the old one kept", len(after.Encryption))
	}
	if !strings.Contains(out.String(), "re-sealed 31 rows with key "+after.Encryption[0].ID) {
		t.Fatalf("rotate output: %q, want 30 messages and 1 chat re-sealed", out.String())
	}
	// The running server reads re-sealed rows: it loads the new key on demand.
	st, hist := call("GET", "/api/v1/chats/"+id+"/messages?limit=200", "")
	if st != 200 || len(hist["messages"].([]any)) != 30 {
		t.Fatalf("history after rotation: %d %v", st, hist)
	}
	if got := hist["messages"].([]any)[0].(map[string]any)["content"]; got != "message 29" {
		t.Fatalf("newest message = %v", got)
	}
	if st, c := call("GET", "/api/v1/chats/"+id, ""); st != 200 || c["title"] != "before rotation" ||
		c["settings"].(map[string]any)["context"] != "secret context" {
		t.Fatalf("chat after rotation: %d %v", st, c)
	}
	// A second rotation with nothing stale left is quick and re-seals all again.
	out = lockedBuffer{}
	if err := app.Run(context.Background(), []string{"keys", "rotate"}, env(map[string]string{"AICHAT_DATA_DIR": dir}), &out, &errOut); err != nil {
		t.Fatalf("second rotate: %v", err)
	}
	if !strings.Contains(out.String(), "re-sealed 31 rows") {
		t.Fatalf("second rotate: %q", out.String())
	}
}
