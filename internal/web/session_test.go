package web_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/chromedp/chromedp"
)

// TestBrowserSession: with access tokens that live 3 seconds, two tabs of
// one person keep chatting through many silent refreshes (serialized, so
// the server never sees a refresh token reused) and socket reconnects; a
// reload keeps the person signed in; a password change elsewhere sends
// both tabs to the sign-in screen with a message; signing out works.
func TestBrowserSession(t *testing.T) {
	b := newBrowser(t)
	srv := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) { c.AccessTTL = 3 * time.Second }))
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(srv.Logs(), "\n") {
				if strings.Contains(l, "auth") || strings.Contains(l, "WARN") || strings.Contains(l, "\"status\":4") {
					t.Log(l)
				}
			}
		}
	})
	tab1 := b.newPage("dave-tab1", 1280, 800)
	signUp(tab1, srv.URL, "Dave", "dave@example.com")
	// A second tab in the same browser context: same storage, same session.
	tab2 := tab1.sibling("dave-tab2")
	tab2.do(chromedp.Navigate(srv.URL + "/"))
	tab2.waitJS("tab 2 signed in", `!document.getElementById('app').hidden && window.aichat.socket.ready`)

	tab1.do(chromedp.Click(chromedp.ID("new-chat")),
		chromedp.WaitVisible(chromedp.ID("new-chat-dialog")),
		chromedp.SendKeys(chromedp.ID("new-title"), "Notes"),
		chromedp.SendKeys(chromedp.ID("new-people"), ""),
		chromedp.Click(chromedp.CSS("#new-chat-form button[type=submit]")))
	tab1.waitJS("Notes open", `document.getElementById('chat-title').textContent === 'Notes'`)
	openChat(tab2, "Notes")

	// Eight seconds of chatting: at least two token lifetimes.
	for i := range 8 {
		from := tab1
		if i%2 == 1 {
			from = tab2
		}
		send(from, fmt.Sprintf("note %d", i))
		time.Sleep(time.Second)
	}
	for _, p := range []*page{tab1, tab2} {
		waitMessage(p, "note 7")
		got := bodies(p)
		for i := range 8 {
			if n := count(got, fmt.Sprintf("note %d", i)); n != 1 {
				t.Fatalf("%s shows note %d %d times: %q", p.name, i, n, got)
			}
		}
		if eval[bool](p, `document.getElementById('app').hidden`) {
			t.Fatalf("%s was signed out while its tokens were refreshed", p.name)
		}
	}
	if strings.Contains(srv.Logs(), "refresh token reused") {
		t.Fatal("the server saw a refresh token used twice")
	}

	// A reload keeps the session and the open chat.
	tab1.do(chromedp.Reload())
	tab1.waitJS("still signed in after reload", `window.aichat && !document.getElementById('app').hidden && document.getElementById('chat-title').textContent === 'Notes'`)
	waitMessage(tab1, "note 7")

	// The password changes elsewhere: every session ends, both tabs show
	// the sign-in screen with a message.
	login := srv.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "dave@example.com", "password": password})
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	login.JSON(t, &sess)
	if r := srv.Do(t, "POST", "/api/v1/me/password", sess.AccessToken, map[string]string{"current_password": password, "new_password": password + " changed"}); r.Status != 204 && r.Status != 200 {
		t.Fatalf("change password: %d %s", r.Status, r.Body)
	}
	for _, p := range []*page{tab1, tab2} {
		p.waitJS("the sign-in screen", `!document.getElementById('auth').hidden && document.getElementById('app').hidden`)
		if msg := eval[string](p, `document.getElementById('auth-notice').textContent`); msg == "" {
			t.Fatalf("%s: signed out without a message", p.name)
		}
	}

	// Sign in again, then sign out with the button.
	tab1.do(chromedp.SendKeys(chromedp.ID("auth-email"), "dave@example.com", chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("auth-password"), password+" changed"),
		chromedp.Click(chromedp.ID("auth-submit")),
		chromedp.WaitVisible(chromedp.ID("app")))
	tab1.do(chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("auth")))
	if s := eval[string](tab1, `String(localStorage.getItem('aichat.session'))`); s != "null" {
		t.Fatalf("the session is still stored after signing out: %s", s)
	}
	for _, p := range []*page{tab1, tab2} {
		if probs := p.consoleProblems("401", "Unauthorized"); len(probs) > 0 {
			t.Errorf("%s: console errors: %q", p.name, probs)
		}
	}
}
