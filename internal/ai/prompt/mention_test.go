package prompt_test

import (
	"testing"

	"github.com/aichat/aichat/internal/ai/prompt"
)

func TestMentioned(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		// Mentions.
		{"@ai", true},
		{"@ai what is the delivery time?", true},
		{"@AI help", true},
		{"Hey @Ai, what do you think?", true},
		{"what do you think, @ai?", true},
		{"thanks @ai.", true},
		{"@ai... are you there", true},
		{"@ai: summarize", true},
		{"@ai!", true},
		{"(@ai)", true},
		{"«@ai» ответь", true},
		{"\"@ai\"", true},
		{"line one\n@ai line two", true},
		{"tab\t@ai", true},
		{"Привет, @ai, как дела?", true},
		{"@ИИ нет, а @ai да", true},
		{"ask\u00a0@ai please", true}, // no-break space
		{"@ai - what now", true},
		{"see https://example.com/x and @ai answer", true},
		{"mail me@ai.com, then @ai summarize", true},
		// Not mentions.
		{"", false},
		{"@", false},
		{"@a", false},
		{"ai", false},
		{"hey ai, help", false},
		{"@ a i", false},
		{"write to x@ai.com", false},
		{"support@ai", false},
		{"foo@AI", false},
		{"почта иван@ai.ru", false},
		{"@ai.com is a domain", false},
		{"@ai.example.org", false},
		{"@aim is a different user", false},
		{"@ai_bot", false},
		{"@ai-bot", false},
		{"@ai123", false},
		{"@aiя", false},
		{"@ai@example.com", false},
		{"@ai/path", false},
		{"@ai:8080", false},
		{"https://example.com/@ai", false},
		{"https://example.com/?user=@ai", false},
		{"http://user@ai.example/", false},
		{"https://example.com/(@ai)", false},
		{"www.example.com/@ai", false},
		{"mailto:@ai", false},
		{"a.@ai", false},
		{"x+@ai", false},
		{"#@ai", false},
		{"@@ai", false},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			if got := prompt.Mentioned(tc.text); got != tc.want {
				t.Errorf("Mentioned(%q) = %v, want %v", tc.text, got, tc.want)
			}
		})
	}
}

func FuzzMentioned(f *testing.F) {
	for _, s := range []string{"@ai", "x@ai.com", "\xff@ai", "@a", "@", "é@AI"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prompt.Mentioned(s) // must not panic on any input
	})
}
