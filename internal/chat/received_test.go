package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestReceivedAt: a message's way to the model is timed from when it
// reached this machine when the caller knows (a socket's kernel stamp),
// else from when Send was called.
func TestReceivedAt(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		svc, db := newService(t, e)
		users := createUsers(t, db, 2)
		c := groupChat(t, svc, users)

		arrived := time.Now().Add(-40 * time.Millisecond)
		sent, err := svc.Send(chat.WithArrival(context.Background(), arrived), users[0].ID, c.ID, "hello", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := sent.Message.ReceivedAt(); !got.Equal(arrived) {
			t.Errorf("ReceivedAt = %v, want the arrival %v", got, arrived)
		}

		before := time.Now()
		sent, err = svc.Send(context.Background(), users[1].ID, c.ID, "hi", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := sent.Message.ReceivedAt(); got.Before(before) || got.After(time.Now()) {
			t.Errorf("ReceivedAt without an arrival = %v, want the call (%v on)", got, before)
		}
	})
}
