package llm

import (
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// BenchmarkRequestBody builds the body of a prompt like the relay
// benchmark's: the system part and 21 messages of 200 bytes.
func BenchmarkRequestBody(b *testing.B) {
	c := New(Provider{Name: "bench", BaseURL: "http://127.0.0.1:1/v1"}, Options{})
	temp := 0.7
	req := Request{Model: "gpt-4o-mini", Temperature: &temp, MaxTokens: 1024, User: "u1"}
	req.Messages = append(req.Messages, Message{Role: "system", Content: strings.Repeat("You are the assistant. ", 40)})
	for i := range 21 {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		req.Messages = append(req.Messages, Message{Role: role, Content: strings.Repeat("lorem ipsum ", 17)[:200]})
	}
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.params(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The SDK's own marshaling of the same request, as before.
	b.Run("sdk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p := openai.ChatCompletionNewParams{Model: req.Model, Temperature: openai.Float(temp),
				MaxCompletionTokens: openai.Int(1024), SafetyIdentifier: openai.String("u1"),
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
			for _, m := range req.Messages {
				if m.Role == "assistant" {
					p.Messages = append(p.Messages, openai.AssistantMessage(m.Content))
				} else {
					p.Messages = append(p.Messages, openai.UserMessage(m.Content))
				}
			}
			if _, err := p.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What the SDK still marshals before our body replaces it.
	b.Run("sdk-empty-params", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (openai.ChatCompletionNewParams{}).MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
