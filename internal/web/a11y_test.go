package web_test

import (
	"context"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserKeyboardAndDarkTheme: the app can be used with the keyboard
// alone (Tab to a control, Enter to use it, Escape to close a dialog), and
// follows the system's dark setting.
func TestBrowserKeyboardAndDarkTheme(t *testing.T) {
	b := newBrowser(t)
	srv := apptest.Start(t, storetest.SQLite(t))
	p := b.newPage("kim", 1280, 800)
	p.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}))
	signUp(p, srv.URL, "Kim", "kim@example.com")
	if bg := eval[string](p, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(21, 23, 27)" {
		t.Fatalf("dark theme: body background %s", bg)
	}

	// Tab from the page start reaches "New chat"; Enter opens the dialog.
	eval[chromedp.Void](p, `document.activeElement.blur()`)
	for i := 0; i < 10 && eval[string](p, `document.activeElement.id`) != "new-chat"; i++ {
		p.do(chromedp.KeyEvent(kb.Tab))
	}
	if id := eval[string](p, `document.activeElement.id`); id != "new-chat" {
		t.Fatalf("Tab never reached New chat (focus on %q)", id)
	}
	p.do(chromedp.KeyEvent(kb.Enter))
	p.waitJS("the dialog open with focus in it", `document.getElementById('new-chat-dialog').open && document.activeElement.id === 'new-title'`)
	p.do(chromedp.KeyEvent(kb.Escape))
	p.waitJS("Escape closes it, focus returns", `!document.getElementById('new-chat-dialog').open && document.activeElement.id === 'new-chat'`)
	p.do(chromedp.KeyEvent(kb.Enter))
	p.waitJS("open again", `document.getElementById('new-chat-dialog').open`)
	p.do(chromedp.KeyEvent("Keys\r"))
	p.waitJS("Enter in the title creates the chat", `document.getElementById('chat-title').textContent === 'Keys'`)
	p.waitJS("the composer focused", `document.activeElement.id === 'input'`)
	p.do(chromedp.KeyEvent("typed without a mouse\r"))
	waitMessage(p, "typed without a mouse")
	p.screenshot("desktop-dark")
	if probs := p.consoleProblems(); len(probs) > 0 {
		t.Errorf("console errors: %q", probs)
	}
}
