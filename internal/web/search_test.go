package web_test

import (
	"fmt"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/chromedp/chromedp"
)

// TestBrowserSearch: the search box finds messages across the person's
// chats (Russian as well as English, case and accents folded), shows
// snippets with the words marked, and opens a result in place, loading
// older pages until the message is on screen.
func TestBrowserSearch(t *testing.T) {
	b := newBrowser(t)
	srv := apptest.Start(t, storetest.SQLite(t))
	olga := srv.Register(t, "olga@example.com")
	srv.Register(t, "petr@example.com")
	var old, other struct{ ID string }
	srv.Do(t, "POST", "/api/v1/chats", olga.AccessToken, map[string]any{"title": "Archive", "participants": []string{"petr@example.com"}}).JSON(t, &old)
	srv.Do(t, "POST", "/api/v1/chats", olga.AccessToken, map[string]any{"title": "Travel"}).JSON(t, &other)
	post := func(chat, text string) {
		if r := srv.Do(t, "POST", "/api/v1/chats/"+chat+"/messages", olga.AccessToken, map[string]any{"content": text}); r.Status != 201 {
			t.Fatalf("post: %d %s", r.Status, r.Body)
		}
	}
	post(old.ID, "The quarterly Zebrafish report is ready")
	for i := range 180 {
		post(old.ID, fmt.Sprintf("filler message %d", i))
	}
	post(other.ID, "Привет из Москвы, встреча в кафе")

	p := b.newPage("olga", 1280, 800)
	signIn(p, srv.URL, "olga@example.com", apptest.Password)
	p.do(chromedp.SendKeys(chromedp.ID("search"), "zebrafish"))
	p.waitJS("one result with the word marked", `document.querySelectorAll('#search-list li').length === 1 && document.querySelector('#search-list mark').textContent === 'Zebrafish'`)
	if n := eval[int](p, `document.querySelectorAll('#search-list li').length`); n != 1 {
		t.Fatalf("%d results", n)
	}
	// The result is 181 messages back: opening it loads older pages until
	// it is on screen.
	p.do(chromedp.Click(chromedp.CSS("#search-list a")))
	p.waitJS("the message shown in place", `(() => { const el = document.querySelector('#message-list li.msg.found'); if (!el) return false;
		const m = document.getElementById('messages').getBoundingClientRect(), r = el.getBoundingClientRect();
		return el.textContent.includes('Zebrafish') && r.top >= m.top && r.bottom <= m.bottom; })()`)
	p.screenshot("desktop-search")

	// Russian, with a different case: found in the other chat.
	eval[chromedp.Void](p, `document.getElementById('search').value = ''`)
	p.do(chromedp.SendKeys(chromedp.ID("search"), "ПРИВЕТ москвы"))
	p.waitJS("the Russian message", `document.querySelectorAll('#search-list li').length === 1 && [...document.querySelectorAll('#search-list mark')].map(m => m.textContent).join(' ') === 'Привет Москвы'`)
	eval[chromedp.Void](p, `document.getElementById('search').value = ''`)
	p.do(chromedp.SendKeys(chromedp.ID("search"), "nothing-like-this"))
	p.waitJS("no results", `document.getElementById('search-status').textContent === 'No messages match.'`)
	p.do(chromedp.KeyEvent("\x1b"))
	p.waitJS("Escape returns to the chats", `document.getElementById('search-results').hidden && !document.querySelector('#app.searching')`)
	if probs := p.consoleProblems(); len(probs) > 0 {
		t.Errorf("console errors: %q", probs)
	}
}
