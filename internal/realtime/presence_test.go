package realtime_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/store/storetest"
)

// gateBroker is the in-process broker, except that Offline waits until the
// test lets it go.
type gateBroker struct {
	*realtime.Local
	entered  chan struct{}
	proceed  chan struct{}
	returned chan struct{}
}

func (b *gateBroker) Offline(ctx context.Context, userID string) (bool, error) {
	b.entered <- struct{}{}
	<-b.proceed
	defer close(b.returned)
	return b.Local.Offline(ctx, userID)
}

type presence struct {
	UserID string `json:"user_id"`
	Online bool   `json:"online"`
}

func presences(t *testing.T, s *realtime.Session) []presence {
	t.Helper()
	var out []presence
	for _, b := range s.Sent() {
		var f struct {
			Type string   `json:"type"`
			Data presence `json:"data"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		if f.Type == realtime.EventPresence {
			out = append(out, f.Data)
		}
	}
	return out
}

// A user whose socket comes back just as the grace period ends, while the
// hub is telling the broker they went offline, must end up online.
func TestPresenceReconnectWhileGoingOffline(t *testing.T) {
	srv := apptest.Start(t, storetest.SQLite(t))
	alice := srv.Register(t, "alice@example.com")
	bob := srv.Register(t, "bob@example.com")
	r := srv.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "ab", "participants": []string{"bob@example.com"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	}

	broker := &gateBroker{Local: realtime.NewLocal(), entered: make(chan struct{}), proceed: make(chan struct{}),
		returned: make(chan struct{})}
	h := realtime.NewHub(realtime.Options{Chats: srv.App.Chats, Broker: broker, PresenceGrace: 10 * time.Millisecond})
	defer h.Shutdown()

	b := realtime.NewOfflineSession(h, bob.User.ID)
	h.TestRegister(b)
	a1 := realtime.NewOfflineSession(h, alice.User.ID)
	h.TestRegister(a1)
	if got := presences(t, b); len(got) != 1 || got[0] != (presence{alice.User.ID, true}) {
		t.Fatalf("bob after alice connected: %+v", got)
	}

	h.TestUnregister(a1)
	select {
	case <-broker.entered: // the grace period is over; the broker is being told
	case <-time.After(5 * time.Second):
		t.Fatal("no offline after the grace period")
	}
	a2 := realtime.NewOfflineSession(h, alice.User.ID)
	h.TestRegister(a2) // back, before the broker heard she left
	close(broker.proceed)
	<-broker.returned

	// Bob may hear her go and come back, but must end up hearing online.
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := presences(t, b)
		on, _ := broker.AreOnline(context.Background(), []string{alice.User.ID})
		if len(got) == 3 && got[2].Online && on[alice.User.ID] {
			t.Logf("bob heard %+v", got)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice is connected, but bob last heard %+v and the broker says online=%v", got, on[alice.User.ID])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
