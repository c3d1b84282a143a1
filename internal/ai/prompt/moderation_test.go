package prompt_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/aichat/aichat/internal/ai/prompt"
)

const card = `re:\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}`

var patterns = []string{
	"bomb",
	"kill yourself",
	"бомба",
	"ёж",
	"c++",
	"strasse",
	card,
	`re:нарк[оа]\w*`,
	`re:Casino`,
}

func TestModeratorCheck(t *testing.T) {
	m, err := prompt.NewModerator(patterns)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		text string
		want string // the pattern reported, "" if not blocked
	}{
		{"word", "how to make a bomb", "bomb"},
		{"upper case", "BOMB!", "bomb"},
		{"punctuation around", "(bomb)", "bomb"},
		{"longer word", "a bombastic speech", ""},
		{"inside a word", "abomb", ""},
		{"word joined by underscore", "bomb_maker", ""},
		{"fullwidth", "ｂｏｍｂ", "bomb"},
		{"zero-width space inside", "bo\u200bmb", "bomb"},
		{"soft hyphen inside", "bo\u00admb", "bomb"},
		{"phrase across a line break", "Kill\n   Yourself", "kill yourself"},
		{"phrase with other words", "killer yourself", ""},
		{"Russian upper case", "Где взять БОМБА?", "бомба"},
		{"Russian longer word", "бомбардировщик летит", ""},
		{"ё written as е", "ЕЖ в лесу", "ёж"},
		{"ё as ё", "ёжик", ""},
		{"symbol-ended pattern", "I like C++ a lot", "c++"},
		{"symbol-ended pattern inside a word", "abc++", ""},
		{"case folding beyond lower case", "Große Straße 1", "strasse"},
		{"compound word", "Hauptstraße 1", ""},
		{"regexp reports the pattern, not the text", "card 4111 1111 1111 1111 thanks", card},
		{"regexp is case-insensitive on Russian", "НАРКОТИКИ", `re:нарк[оа]\w*`},
		{"regexp with upper case letters", "online casino", "re:Casino"},
		{"first configured pattern wins", "bomb and бомба", "bomb"},
		{"harmless English", "When does the parcel arrive?", ""},
		{"harmless Russian", "Привет, как дела?", ""},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blocked, matched := m.Check(tc.text)
			if blocked != (tc.want != "") || matched != tc.want {
				t.Errorf("Check(%q) = %v, %q; want %v, %q", tc.text, blocked, matched, tc.want != "", tc.want)
			}
			if blocked && tc.text != "" && strings.Contains(matched, "4111") {
				t.Errorf("Check returned the user's text %q", matched)
			}
		})
	}
}

func TestModeratorEmpty(t *testing.T) {
	var nilMod *prompt.Moderator
	empty, err := prompt.NewModerator(nil)
	if err != nil {
		t.Fatal(err)
	}
	blanks, err := prompt.NewModerator([]string{"", "  "})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*prompt.Moderator{"nil": nilMod, "zero": {}, "no patterns": empty, "blank patterns": blanks} {
		if blocked, matched := m.Check("bomb"); blocked || matched != "" {
			t.Errorf("%s moderator blocked: %q", name, matched)
		}
	}
}

func TestNewModeratorErrors(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		want     string // in the error
	}{
		{"bad regexp", []string{"ok", "re:("}, `moderation pattern 2 "re:(": bad regular expression`},
		{"empty regexp", []string{"re:  "}, "empty regular expression"},
		{"regexp matching nothing", []string{"re:x*"}, "would block every message"},
		{"invisible word", []string{"\u200b"}, "nothing left"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := prompt.NewModerator(tc.patterns)
			if err == nil || !strings.Contains(err.Error(), tc.want) || m != nil {
				t.Errorf("NewModerator(%q) = %v, %v; want error with %q", tc.patterns, m, err, tc.want)
			}
		})
	}
}

func TestParsePatterns(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr []string // all in the error
	}{
		{name: "empty", in: "", want: nil},
		{name: "blank", in: " , ,\t", want: nil},
		{name: "commas", in: "bomb, kill yourself ,,бомба", want: []string{"bomb", "kill yourself", "бомба"}},
		{name: "one regexp", in: `re:\d{16}`, want: []string{`re:\d{16}`}},
		{
			name: "lines allow commas in regexps",
			in:   "bomb\r\n" + `re:\d{13,19}` + "\n\n  бомба, ракета  \n",
			want: []string{"bomb", `re:\d{13,19}`, "бомба, ракета"},
		},
		{
			name:    "bad regexp",
			in:      "bomb,re:[a-",
			wantErr: []string{`moderation pattern 2 "re:[a-"`, "bad regular expression", "missing closing ]"},
		},
		{
			name: "commas inside regexp brackets on one line",
			in:   `bomb, re:\d{13,19}, re:[,;]x, re:(a,b|c), re:\,y ,бомба`,
			want: []string{"bomb", `re:\d{13,19}`, "re:[,;]x", "re:(a,b|c)", `re:\,y`, "бомба"},
		},
		{
			name: "a comma outside brackets ends a regexp",
			in:   "re:buy now, pay later",
			want: []string{"re:buy now", "pay later"},
		},
		{
			name:    "unclosed repetition on one line",
			in:      "re:a{1,2, bomb",
			wantErr: []string{`moderation pattern 1 "re:a{1,2, bomb"`, "unclosed bracket"},
		},
		{
			name:    "bad regexp on its own line",
			in:      "bomb\nre:(",
			wantErr: []string{`moderation pattern 2 "re:("`, "missing closing )"},
		},
		{name: "empty regexp", in: "re:", wantErr: []string{"empty regular expression"}},
		{name: "regexp matching empty text", in: "re:.*", wantErr: []string{"would block every message"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := prompt.ParsePatterns(tc.in)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("ParsePatterns(%q) = %q, want an error", tc.in, got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePatterns(%q): %v", tc.in, err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("ParsePatterns(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if _, err := prompt.NewModerator(got); err != nil {
				t.Errorf("NewModerator rejects what ParsePatterns accepted: %v", err)
			}
		})
	}
}

// One Moderator serves every chat at once; run with -race.
func TestModeratorConcurrent(t *testing.T) {
	m, err := prompt.NewModerator(patterns)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				text, want := "Где взять БОМБА?", true
				if i%2 == 0 {
					text, want = "Привет, как дела?", false
				}
				if blocked, _ := m.Check(text); blocked != want {
					t.Errorf("Check(%q) = %v", text, blocked)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkModeratorCheck(b *testing.B) {
	m, err := prompt.NewModerator(patterns)
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("Курьер приедет завтра, the parcel is on its way. ", 20) // ~1 KB, no match
	b.ReportAllocs()
	for b.Loop() {
		m.Check(text)
	}
}
