package web_test

import (
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/chromedp/chromedp"
)

// TestBrowserFriendsAndBell: a friend request sent from the Friends
// dialog reaches the other person live (bell count, toast, pending
// request), is accepted, comes back as a notification, and a direct chat
// opens in one click; an unknown address gets the same answer as a known
// one; Mark all read clears the bell.
func TestBrowserFriendsAndBell(t *testing.T) {
	b := newBrowser(t)
	srv := apptest.Start(t, storetest.SQLite(t))
	lena := b.newPage("lena", 1280, 800)
	mark := b.newPage("mark", 1280, 800)
	signUp(lena, srv.URL, "Lena", "lena@example.com")
	signUp(mark, srv.URL, "Mark", "mark@example.com")

	request := func(email string) string {
		lena.do(chromedp.SetValue(chromedp.ID("friend-email"), email), chromedp.Click(chromedp.CSS("#friend-form button[type=submit]")))
		lena.waitJS("the request notice", `!document.getElementById('friends-notice').hidden && document.getElementById('friends-notice').textContent.includes(`+js(email)+`)`)
		return eval[string](lena, `document.getElementById('friends-notice').textContent.replace(`+js(email)+`, 'X')`)
	}
	lena.do(chromedp.Click(chromedp.ID("open-friends")), chromedp.WaitVisible(chromedp.ID("friends-dialog")))
	unknown := request("nobody-here@example.com")
	known := request("mark@example.com")
	if unknown != known {
		t.Fatalf("an unknown address is answered differently: %q vs %q", unknown, known)
	}

	// Mark: the bell counts it, a toast says it, the request waits.
	mark.waitJS("the bell count", `document.getElementById('bell-count').textContent === '1' && !document.getElementById('bell-count').hidden`)
	mark.waitJS("the toast", `[...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('lena@example.com'))`)
	mark.waitJS("the friends badge", `document.getElementById('friends-count').textContent === '1'`)
	mark.do(chromedp.Click(chromedp.ID("open-friends")), chromedp.WaitVisible(chromedp.ID("friends-dialog")))
	mark.waitJS("Lena's request", `[...document.querySelectorAll('#incoming-list li .n')].some(n => n.textContent.includes('lena@example.com'))`)
	eval[chromedp.Void](mark, `[...document.querySelectorAll('#incoming-list li button')].find(b => b.textContent === 'Accept').click()`)
	mark.waitJS("Lena a friend", `[...document.querySelectorAll('#friend-list li .n')].some(n => n.textContent.includes('lena@example.com'))`)
	mark.do(chromedp.Click(chromedp.ID("friends-close")))

	// Lena: the acceptance arrives; Mark shows as online; one click chats.
	lena.waitJS("the acceptance in the bell", `document.getElementById('bell-count').textContent === '1'`)
	lena.waitJS("Mark online in the friends list", `!!document.querySelector('#friend-list li .dot.on + .n[title="mark@example.com"]')`)
	eval[chromedp.Void](lena, `document.querySelector('#friend-list li[data-user-id] button.chat-with').click()`)
	lena.waitJS("the direct chat open", `!document.getElementById('messages').hidden && window.aichat.view.chat && window.aichat.view.chat.participants.length === 2`)
	send(lena, "hi mark, friends now")
	waitMessage(lena, "hi mark, friends now")
	mark.waitJS("the direct chat in Mark's list", `document.querySelectorAll('#chat-list a').length === 1`)

	// The bell lists the notifications; Mark all read clears the count.
	lena.do(chromedp.Click(chromedp.ID("bell")), chromedp.WaitVisible(chromedp.ID("notifications-dialog")))
	lena.waitJS("the accepted notification listed", `[...document.querySelectorAll('#notification-list li.unread .t')].some(t => t.textContent.includes('mark@example.com'))`)
	lena.do(chromedp.Click(chromedp.ID("notifications-read-all")))
	lena.waitJS("the bell cleared", `document.getElementById('bell-count').hidden && !document.querySelector('#notification-list li.unread')`)
	lena.screenshot("desktop-notifications")
	lena.do(chromedp.Click(chromedp.ID("notifications-close")))

	// Invitations: Lena's new chat asks newcomers to accept; adding Mark
	// invites him; both sides see it pending; he joins from the sidebar.
	lena.do(chromedp.Click(chromedp.ID("new-chat")), chromedp.WaitVisible(chromedp.ID("new-chat-dialog")),
		chromedp.SendKeys(chromedp.ID("new-title"), "Book club"),
		chromedp.Click(chromedp.CSS("#new-chat-form button[type=submit]")))
	lena.waitJS("Book club open", `document.getElementById('chat-title').textContent === 'Book club'`)
	lena.do(chromedp.Click(chromedp.ID("open-settings")), chromedp.WaitVisible(chromedp.ID("settings-dialog")),
		chromedp.Click(chromedp.ID("set-require_acceptance")), chromedp.Click(chromedp.ID("settings-save")))
	lena.waitJS("settings saved", `!document.getElementById('settings-dialog').open && window.aichat.view.chat.settings.require_acceptance === true`)
	lena.do(chromedp.Click(chromedp.ID("open-members")), chromedp.WaitVisible(chromedp.ID("members-dialog")),
		chromedp.SendKeys(chromedp.ID("add-member-email"), "mark@example.com"), chromedp.Click(chromedp.CSS("#add-member-form button")))
	lena.waitJS("the invitation pending for Lena", `!document.getElementById('members-notice').hidden && [...document.querySelectorAll('#pending-list .n')].some(n => n.title === 'mark@example.com') && window.aichat.view.chat.participants.length === 1`)
	lena.do(chromedp.Click(chromedp.ID("members-close")))
	mark.waitJS("the invitation in Mark's sidebar", `!document.getElementById('invitations').hidden && document.getElementById('invitation-list').textContent.includes('lena@example.com invited you to Book club')`)
	mark.do(chromedp.Click(chromedp.CSS("#invitation-list button.accept")))
	mark.waitJS("Mark in Book club", `document.getElementById('chat-title').textContent === 'Book club' && document.getElementById('invitations').hidden`)
	lena.waitJS("Mark joined for Lena", `window.aichat.view.chat.participants.length === 2`)
	for _, p := range []*page{lena, mark} {
		if probs := p.consoleProblems(); len(probs) > 0 {
			t.Errorf("%s: console errors: %q", p.name, probs)
		}
	}
}

// TestBrowserAdminBlock: an admin finds a user in the admin panel and
// blocks them; the blocked person's open page loses its connection at
// once and shows the sign-in screen saying why; support sees usage, status
// and the moderation queue, without the users, audit or bots views.
func TestBrowserAdminBlock(t *testing.T) {
	b := newBrowser(t)
	srv := apptest.Start(t, storetest.SQLite(t))
	srv.Admin(t, "root@example.com")
	srv.Register(t, "nina@example.com")
	staff := srv.Register(t, "sam@example.com")
	admin := b.newPage("root", 1280, 800)
	nina := b.newPage("nina", 1280, 800)
	signIn(nina, srv.URL, "nina@example.com", apptest.Password)
	signIn(admin, srv.URL, "root@example.com", apptest.Password)

	admin.waitJS("the Admin link", `!document.getElementById('open-admin').hidden`)
	admin.do(chromedp.Click(chromedp.ID("open-admin")))
	admin.waitJS("the users table", `!!document.querySelector('#admin-body tr[data-email="nina@example.com"]')`)
	admin.do(chromedp.SetValue(chromedp.ID("admin-search"), "nina"), chromedp.Click(chromedp.CSS("#admin-body form.row button[type=submit]")))
	admin.waitJS("search narrowed", `document.querySelectorAll('#admin-body tbody tr').length === 1`)
	admin.screenshot("desktop-admin-users")
	admin.do(chromedp.Click(chromedp.CSS(`#admin-body tr[data-email="nina@example.com"] button.block`)))
	admin.waitJS("shown blocked", `document.querySelector('#admin-body tr[data-email="nina@example.com"] button.block').textContent === 'Unblock'`)

	nina.waitJS("Nina's page signed out", `!document.getElementById('auth').hidden`)
	if msg := eval[string](nina, `document.getElementById('auth-notice').textContent`); !strings.Contains(strings.ToLower(msg), "blocked") {
		t.Fatalf("the blocked page says %q", msg)
	}

	// The other views load for an admin.
	for _, tab := range []string{"usage", "status", "flags", "audit", "bots"} {
		admin.do(chromedp.Click(chromedp.CSS(`.admin-tabs button[data-tab="` + tab + `"]`)))
		admin.waitJS(tab+" loaded", `document.querySelector('.admin-tabs button[data-tab="`+tab+`"]').getAttribute('aria-selected') === 'true' && document.getElementById('admin-error').hidden && document.getElementById('admin-body').children.length > 0`)
	}
	admin.do(chromedp.Click(chromedp.CSS(`.admin-tabs button[data-tab="audit"]`)))
	admin.waitJS("the block in the audit log", `document.getElementById('admin-body').textContent.includes('nina') || document.getElementById('admin-body').textContent.includes('block')`)

	// Support: the panel without audit, bots or any control that changes users.
	if r := srv.Do(t, "PATCH", "/api/v1/admin/users/"+staff.User.ID, srv.Admin(t, "root@example.com").AccessToken, map[string]any{"role": "support"}); r.Status != 200 {
		t.Fatalf("make support: %d %s", r.Status, r.Body)
	}
	sup := b.newPage("sam", 1280, 800)
	signIn(sup, srv.URL, "sam@example.com", apptest.Password)
	sup.do(chromedp.Click(chromedp.ID("open-admin")))
	sup.waitJS("the usage view for support", `document.querySelector('.admin-tabs button[data-tab="usage"]').getAttribute('aria-selected') === 'true' && !!document.querySelector('#admin-body table') && document.getElementById('admin-error').hidden`)
	sup.do(chromedp.Click(chromedp.CSS(`.admin-tabs button[data-tab="flags"]`)))
	sup.waitJS("the moderation queue for support", `document.querySelector('.admin-tabs button[data-tab="flags"]').getAttribute('aria-selected') === 'true' && document.getElementById('admin-error').hidden`)
	if n := eval[int](sup, `document.querySelectorAll('#admin-body button.block, #admin-body select').length + [...document.querySelectorAll('.admin-tabs [data-admin-only]')].filter(b => !b.hidden).length`); n != 0 {
		t.Fatalf("support sees %d controls meant for admins", n)
	}
	for _, p := range []*page{admin, sup} {
		if probs := p.consoleProblems(); len(probs) > 0 {
			t.Errorf("%s: console errors: %q", p.name, probs)
		}
	}
}
