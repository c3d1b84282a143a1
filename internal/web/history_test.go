package web_test

import (
	"fmt"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/chromedp/chromedp"
)

// signIn uses the sign-in form.
func signIn(p *page, base, email, pass string) {
	p.t.Helper()
	p.do(chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("auth-form")),
		chromedp.SendKeys(chromedp.ID("auth-email"), email),
		chromedp.SendKeys(chromedp.ID("auth-password"), pass),
		chromedp.Click(chromedp.ID("auth-submit")),
		chromedp.WaitVisible(chromedp.ID("app")))
	p.waitJS("the socket", `window.aichat && window.aichat.socket.ready`)
}

// TestBrowserLongChat: a chat of 1,000 messages opens on its newest page,
// older pages load on scrolling up without moving what is on screen, a new
// message while scrolled up shows the pill instead of jumping, and the
// settings and people dialogs work with clear validation messages.
func TestBrowserLongChat(t *testing.T) {
	b := newBrowser(t)
	srv := apptest.Start(t, storetest.SQLite(t))
	erin := srv.Register(t, "erin@example.com")
	frank := srv.Register(t, "frank@example.com")
	srv.Register(t, "gina@example.com")
	var c struct{ ID string }
	srv.Do(t, "POST", "/api/v1/chats", erin.AccessToken, map[string]any{"title": "Archive", "participants": []string{"frank@example.com"}}).JSON(t, &c)
	const total = 1000
	for i := 1; i <= total; i++ {
		tok := erin.AccessToken
		if i%3 == 0 {
			tok = frank.AccessToken
		}
		body := fmt.Sprintf("message %d", i)
		if i%10 == 0 {
			body += "\nwith a second line to vary the height"
		}
		if r := srv.Do(t, "POST", "/api/v1/chats/"+c.ID+"/messages", tok, map[string]any{"content": body, "client_id": fmt.Sprint("seed-", i)}); r.Status != 201 {
			t.Fatalf("seed %d: %d %s", i, r.Status, r.Body)
		}
	}

	p := b.newPage("erin", 1280, 800)
	signIn(p, srv.URL, "erin@example.com", apptest.Password)
	openChat(p, "Archive")
	p.waitJS("the newest page", `window.aichatMetrics && window.aichatMetrics.messages > 0`)
	openMs := eval[float64](p, `window.aichatMetrics.openMs`)
	shown := eval[int](p, `window.aichatMetrics.messages`)
	t.Logf("a chat of %d messages: first page (%d messages) shown in %.1f ms", total, shown, openMs)
	if shown != 50 {
		t.Fatalf("%d messages on the first page, want 50", shown)
	}
	if !eval[bool](p, `(() => { const m = document.getElementById('messages'); return m.scrollHeight - m.scrollTop - m.clientHeight < 2; })()`) {
		t.Fatal("the chat did not open at the bottom")
	}

	// Scroll up page by page: what was the top message stays put.
	for loaded := shown; loaded < total; {
		anchor := eval[string](p, `document.querySelector('#message-list li.msg').dataset.seq`)
		// Where the top message sits in the scrolled content: once scrolled
		// to 0, that is where it must stay on screen while the page loads.
		before := eval[float64](p, `(() => { const m = document.getElementById('messages'); const a = document.querySelector('#message-list li.msg'); return a.getBoundingClientRect().top - m.getBoundingClientRect().top + m.scrollTop; })()`)
		eval[chromedp.Void](p, `document.getElementById('messages').scrollTop = 0`)
		p.waitJS("an older page", fmt.Sprintf(`document.querySelectorAll('#message-list li.msg').length > %d && !window.aichat.view.loadingOlder`, loaded))
		after := eval[float64](p, `(() => { const m = document.getElementById('messages'); const a = document.querySelector('#message-list li.msg[data-seq="`+anchor+`"]'); return a.getBoundingClientRect().top - m.getBoundingClientRect().top; })()`)
		if d := after - before; d < -2 || d > 2 {
			t.Fatalf("message %s jumped by %.0f px when an older page loaded", anchor, d)
		}
		loaded = eval[int](p, `document.querySelectorAll('#message-list li.msg').length`)
	}
	seqs := eval[[]int](p, `[...document.querySelectorAll('#message-list li.msg')].map(li => Number(li.dataset.seq))`)
	if len(seqs) != total {
		t.Fatalf("%d messages after scrolling to the top, want %d", len(seqs), total)
	}
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("message %d has seq %d: order or gaps wrong", i, s)
		}
	}

	// Scrolled up, a new message shows the pill and does not move the view.
	eval[chromedp.Void](p, `document.getElementById('messages').scrollTop = 5000`)
	p.waitJS("scrolled", `!window.aichat.view.stick`)
	top := eval[float64](p, `document.getElementById('messages').scrollTop`)
	srv.Do(t, "POST", "/api/v1/chats/"+c.ID+"/messages", frank.AccessToken, map[string]any{"content": "fresh news"})
	waitMessage(p, "fresh news")
	p.waitJS("the new-messages pill", `!document.getElementById('new-pill').hidden`)
	if now := eval[float64](p, `document.getElementById('messages').scrollTop`); now != top {
		t.Fatalf("the view moved from %.0f to %.0f while scrolled up", top, now)
	}
	p.do(chromedp.Click(chromedp.ID("new-pill")))
	p.waitJS("back at the bottom", `document.getElementById('new-pill').hidden && window.aichat.view.atBottom()`)

	// Settings: a bad value is named, a good one is saved.
	p.do(chromedp.Click(chromedp.ID("open-settings")), chromedp.WaitVisible(chromedp.ID("settings-dialog")))
	p.do(chromedp.SetValue(chromedp.ID("set-temperature"), "5"), chromedp.Click(chromedp.ID("settings-save")))
	p.waitJS("a validation message", `!document.getElementById('settings-error').hidden && document.getElementById('set-temperature').getAttribute('aria-invalid') === 'true'`)
	p.do(chromedp.SetValue(chromedp.ID("set-temperature"), "0.4"),
		chromedp.SetValue(chromedp.ID("set-depth"), "7"),
		chromedp.SetValue(chromedp.ID("set-context"), "Answer in one sentence."),
		chromedp.SetValue(chromedp.ID("set-stop"), "END\nSTOP"),
		chromedp.SetValue(chromedp.ID("set-ai_mode"), "always"),
		chromedp.Click(chromedp.ID("settings-save")))
	p.waitJS("the dialog closed", `!document.getElementById('settings-dialog').open`)
	var got struct {
		Settings struct {
			Temperature float64  `json:"temperature"`
			Depth       int      `json:"depth"`
			Context     string   `json:"context"`
			Stop        []string `json:"stop"`
			AIMode      string   `json:"ai_mode"`
		} `json:"settings"`
	}
	srv.Do(t, "GET", "/api/v1/chats/"+c.ID, erin.AccessToken, nil).JSON(t, &got)
	st := got.Settings
	if st.Temperature != 0.4 || st.Depth != 7 || st.Context != "Answer in one sentence." || len(st.Stop) != 2 || st.AIMode != "always" {
		t.Fatalf("saved settings: %+v", st)
	}

	// People: add Gina, remove her, with an unknown email named as an error.
	p.do(chromedp.Click(chromedp.ID("open-members")), chromedp.WaitVisible(chromedp.ID("members-dialog")))
	p.do(chromedp.SendKeys(chromedp.ID("add-member-email"), "nobody@example.com"), chromedp.Click(chromedp.CSS("#add-member-form button")))
	p.waitJS("an error for an unknown email", `!document.getElementById('members-error').hidden`)
	p.do(chromedp.SetValue(chromedp.ID("add-member-email"), "gina@example.com"), chromedp.Click(chromedp.CSS("#add-member-form button")))
	p.waitJS("Gina listed", `[...document.querySelectorAll('#member-list .n')].some(n => n.title === 'gina@example.com')`)
	eval[chromedp.Void](p, `[...document.querySelectorAll('#member-list li')].find(li => li.querySelector('.n').title === 'gina@example.com').querySelector('button').click()`)
	p.waitJS("Gina gone", `![...document.querySelectorAll('#member-list .n')].some(n => n.title === 'gina@example.com')`)
	p.do(chromedp.Click(chromedp.ID("members-close")))
	p.screenshot("desktop-long-chat")

	// Frank leaves from his own browser.
	q := b.newPage("frank", 1280, 800)
	signIn(q, srv.URL, "frank@example.com", apptest.Password)
	openChat(q, "Archive")
	q.do(chromedp.Click(chromedp.ID("open-settings")), chromedp.WaitVisible(chromedp.ID("settings-dialog")))
	if !eval[bool](q, `document.getElementById('set-temperature').disabled && !document.getElementById('settings-owner-only').hidden`) {
		t.Fatal("a member who is not the owner can edit the assistant settings")
	}
	q.do(chromedp.Click(chromedp.ID("settings-cancel")))
	eval[chromedp.Void](q, `window.confirm = () => true`)
	q.do(chromedp.Click(chromedp.ID("open-members")), chromedp.WaitVisible(chromedp.ID("members-dialog")), chromedp.Click(chromedp.ID("leave-chat")))
	q.waitJS("the chat gone from Frank's list", `!document.querySelector('#chat-list a') && location.hash === '#/'`)
	p.waitJS("Frank gone from Erin's chat", `window.aichat.view.chat.participants.length === 1`)
	for _, pg := range []*page{p, q} {
		if probs := pg.consoleProblems("status of 400", "status of 404"); len(probs) > 0 {
			t.Errorf("%s: console errors: %q", pg.name, probs)
		}
	}
}
