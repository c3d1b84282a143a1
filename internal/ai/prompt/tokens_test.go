package prompt_test

import (
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/ai/prompt"
)

func TestEstimateTokens(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"one letter", "a", 1},
		{"four letters", "abcd", 1},
		{"five letters", "abcde", 2},
		{"English sentence", "The courier arrives tomorrow.", 8}, // 29 bytes / 4, rounded up
		{"400 ASCII bytes", strings.Repeat("word ", 80), 100},    // bytes/4
		{"Russian word", "привет", 4},                            // 6 runes × 0.6
		{"Russian sentence", "Курьер приедет завтра.", 13},       // 19 × 0.6 + 3 × 0.25 = 12.15, rounded up
		{"CJK", "你好世界", 4},                                       // 1 per character
		{"emoji", "😀", 2},                                        // 2 per 4-byte rune
		{"mixed", "ok, да 好", 4},                                 // 4×0.25 + 2×0.6 + 0.25 + 1 = 3.45
		{"invalid byte", "\xff", 1},                              // one token per bad byte
		{"1000 Cyrillic letters", strings.Repeat("я", 1000), 600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := prompt.EstimateTokens(tc.in); got != tc.want {
				t.Errorf("EstimateTokens(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

// Non-ASCII text costs at least as much per byte as ASCII: the estimate
// must not undercount Russian, which is where the prompt overflows first.
func TestEstimateTokensNonASCIIBias(t *testing.T) {
	for _, s := range []string{"доставка", "你好", "Ελληνικά", "😀"} {
		text := strings.Repeat(s, 100)
		ascii := strings.Repeat("x", len(text))
		if got, base := prompt.EstimateTokens(text), prompt.EstimateTokens(ascii); got <= base {
			t.Errorf("%q × 100: %d tokens, not more than %d for as many ASCII bytes", s, got, base)
		}
	}
}

func TestContextWindow(t *testing.T) {
	tests := []struct {
		model string
		want  int
	}{
		{"gpt-4o", 128000},
		{"gpt-4o-mini", 128000},
		{"GPT-4o-2024-08-06", 128000},
		{"openai/gpt-4o", 128000},
		{"gpt-4.1", 1047576},
		{"gpt-4.1-nano", 1047576},
		{"gpt-3.5-turbo", 16385},
		{"llama3", 8192},
		{"llama3.1:8b", 8192},
		{"llama3.2:3b-instruct-q4_K_M", 8192},
		{"qwen2.5:7b", 32768},
		{"Qwen2.5-72B-Instruct", 32768},
		{" qwen2.5 ", 32768},
		{"", prompt.DefaultContextWindow},
		{"mistral", prompt.DefaultContextWindow},
		{"gpt-4", prompt.DefaultContextWindow},
		{"my-gpt-4o", prompt.DefaultContextWindow}, // prefix, not substring
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			if got := prompt.ContextWindow(tc.model); got != tc.want {
				t.Errorf("ContextWindow(%q) = %d, want %d", tc.model, got, tc.want)
			}
		})
	}
}

func TestPromptBudget(t *testing.T) {
	tests := []struct {
		name      string
		model     string
		maxTokens int
		want      int
	}{
		{"provider default keeps the default reserve", "gpt-4o", 0, 128000 - prompt.DefaultAnswerReserve},
		{"negative is the provider default", "llama3", -1, 8192 - prompt.DefaultAnswerReserve},
		{"max_tokens is reserved", "gpt-4o", 4096, 128000 - 4096},
		{"small model", "llama3", 2000, 8192 - 2000},
		{"reserve capped at half the window", "llama3", 128000, 4096},
		{"unknown model", "some-local-model", 512, prompt.DefaultContextWindow - 512},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := prompt.PromptBudget(tc.model, tc.maxTokens); got != tc.want {
				t.Errorf("PromptBudget(%q, %d) = %d, want %d", tc.model, tc.maxTokens, got, tc.want)
			}
		})
	}
}
