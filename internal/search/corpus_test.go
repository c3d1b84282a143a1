package search_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/search"
	"github.com/aichat/aichat/internal/store/storetest"
)

// vocabulary of several languages and scripts, with case and diacritic
// variants the normalization must fold.
var vocabulary = strings.Fields(`
the of and to in is you that it he was for on are as with his they at be this from have or by
one had not but what all were when we there can an your which their said if do will each about
how up out them then she many some so these would other into has more her two like him see time
could no make than first been its who now people my made over did down only way find use may
water long little very after words called just where most know get through back much before go
good new write our used me man too any day same right look think also around another came come
work three word must because does part even place well such here take why things help put years
different away again off went old number great tell men say small every found still between name
и в не на я быть он с что а по это она этот к но они мы как из у который то за свой весь год от
так о для ты же все тот мочь вы человек такой его сказать только или еще бы себя один как уже до
время если сам когда другой вот говорить наш мой знать стать при чтобы дело жизнь первый день
тут во ничто потом очень со хотеть ли под новый два кто надо работа слово место лицо друг глаз
ёлка Ёжик ещё всё зелёный Café café CAFÉ naïve résumé Zoë Straße strasse Über über Ärger Öl
façade garçon crème brûlée jalapeño niño España München Köln Zürich Ångström Łódź Kraków
der die das und ist nicht ein eine mit auf für sich dem den von zu wir ihr sie es auch nach
le la les des est pas une que qui dans pour sur avec plus été être très où même déjà après
12 2024 42 100 7 3.14 ½ ① ＡＢＣ ﬁle
`)

func pick(r *rand.Rand) string {
	// Skewed towards the front: a few very common words, a long tail.
	f := r.Float64()
	return vocabulary[int(f*f*f*float64(len(vocabulary)))]
}

// TestSearchMatchesPlainSearchOnCorpus sends 10,000 generated messages in
// several languages and scripts to chats with overlapping members, and
// checks every user's results for words, several words and phrases (all
// pages) against a plain search over the decrypted texts of the chats they
// are in. With -race or -short it uses 2,000 (see raceBuild).
func TestSearchMatchesPlainSearchOnCorpus(t *testing.T) {
	n := 10000
	if testing.Short() || raceBuild {
		n = 2000
	}
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		ctx := context.Background()
		var users []apptest.Session
		for i := range 4 {
			users = append(users, s.Register(t, fmt.Sprintf("u%d@example.com", i)))
		}
		email := func(i int) string { return users[i].User.Email }
		type room struct {
			id      string
			members []int
		}
		var rooms []room
		for _, m := range [][]int{{0, 1}, {0, 2}, {1, 2, 3}, {0, 1, 2, 3}, {3}} {
			var others []string
			for _, u := range m[1:] {
				others = append(others, email(u))
			}
			rooms = append(rooms, room{id: newChat(t, s, users[m[0]].AccessToken, others...), members: m})
		}
		type msg struct {
			id, chat, text string
			toks           []search.Token
		}
		var corpus []msg
		r := rand.New(rand.NewPCG(1, 2))
		start := time.Now()
		for range n {
			rm := rooms[r.IntN(len(rooms))]
			author := users[rm.members[r.IntN(len(rm.members))]]
			words := make([]string, 3+r.IntN(10))
			for i := range words {
				words[i] = pick(r)
			}
			text := strings.Join(words, []string{" ", ", ", " ", ". ", "\n"}[r.IntN(5)])
			sent, err := s.App.Chats.Send(ctx, author.User.ID, rm.id, text, "")
			if err != nil {
				t.Fatal(err)
			}
			corpus = append(corpus, msg{sent.Message.ID, rm.id, text, search.Tokenize(text)})
		}
		flush(t, s)
		sentAt := time.Now()

		queries := []string{"the", "и", "ёлка", "ЕЛКА", "cafe", "STRASSE", "uber", "lodz", "file", "abc", "1", "zebra", "время", "garcon"}
		for range 12 {
			queries = append(queries, pick(r)+" "+pick(r), pick(r)+" "+pick(r)+" "+pick(r))
		}
		for range 8 { // phrases taken from the corpus, some reversed
			toks := search.Tokenize(corpus[r.IntN(len(corpus))].text)
			i := r.IntN(len(toks) - 1)
			queries = append(queries, `"`+toks[i].Text+" "+toks[i+1].Text+`"`, `"`+toks[i+1].Text+" "+toks[i].Text+`"`)
		}
		compare := func(t *testing.T, perStatement int) {
			for ui, u := range users {
				in := map[string]bool{}
				for _, rm := range rooms {
					if slices.Contains(rm.members, ui) {
						in[rm.id] = true
					}
				}
				for _, q := range queries {
					pq := search.ParseQuery(q)
					var want []string
					for _, m := range corpus {
						if in[m.chat] && pq.Match(m.toks) {
							want = append(want, m.id)
						}
					}
					slices.Reverse(want) // newest first
					var got []string
					cursor := ""
					for {
						p, err := s.App.Search.Search(ctx, search.Request{UserID: u.User.ID, Query: q, Limit: 50, Cursor: cursor})
						if err != nil {
							t.Fatalf("%q: %v", q, err)
						}
						for _, res := range p.Results {
							got = append(got, res.MessageID)
						}
						if p.NextCursor == "" {
							break
						}
						cursor = p.NextCursor
					}
					if !slices.Equal(got, want) {
						t.Errorf("%d chats per statement, user %d, %q: %d results, plain search %d", perStatement, ui, q, len(got), len(want))
					}
				}
			}
		}
		// Also with two chats per statement: the merge of several.
		for _, perStatement := range []int{100, 2} {
			restore := search.SetMaxChatsPerStatement(perStatement)
			compare(t, perStatement)
			restore()
		}
		t.Logf("%d messages sent in %v, %d queries × %d users × 2 in %v", len(corpus), sentAt.Sub(start),
			len(queries), len(users), time.Since(sentAt))
	})
}
