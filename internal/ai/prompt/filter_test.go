package prompt_test

import (
	"testing"

	"github.com/aichat/aichat/internal/ai/prompt"
)

func TestCheckAnswer(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		reason string // "" when the answer is shown
	}{
		// Shown.
		{"plain answer", "The courier arrives tomorrow.", ""},
		{"Russian answer", "Курьер приедет завтра до 18:00.", ""},
		{"a number", "42", ""},
		{"a JSON string", `"ok"`, ""},
		{"a JSON scalar literal", "true", ""},
		{"JSON inside prose", `Send {"chat_id":"123"} as the request body.`, ""},
		{"Russian prose with JSON", `Вот пример запроса: {"id": 1, "город": "Москва"}`, ""},
		{"JSON block with an explanation before", "Here is the payload:\n```json\n{\"chat_id\":\"123\"}\n```", ""},
		{"JSON block with an explanation after", "```json\n{\"a\":1}\n```\nThis object has one field.", ""},
		{"two fences", "```json\n{\"a\":1}\n```\n```json\n{\"b\":2}\n```", ""},
		{"JSON followed by text", `{"a":1} is the smallest example.`, ""},
		{"code block that is not JSON", "```go\nfmt.Println(\"hi\")\n```", ""},
		{"braces that are not JSON", "{not json}", ""},
		{"citation brackets", "[1] Smith, 2020.", ""},
		{"markdown link", "[docs](https://example.com)", ""},
		{"unclosed fence", "```json\n{\"a\":1}", ""},
		// Not shown.
		{"empty", "", prompt.ReasonEmpty},
		{"white space", "  \n\t ", prompt.ReasonEmpty},
		{"zero-width characters", "\u200b\u200d\ufeff", prompt.ReasonEmpty},
		{"empty fence", "```\n\n```", prompt.ReasonEmpty},
		{"technical object", `{"chat_id":"123","user_id":"456"}`, prompt.ReasonJSONOnly},
		{"object with white space", " \n{\n  \"chat_id\": \"123\",\n  \"user_id\": \"456\"\n}\n ", prompt.ReasonJSONOnly},
		{"empty object", "{}", prompt.ReasonJSONOnly},
		{"empty array", "[]", prompt.ReasonJSONOnly},
		{"array", `[{"id":1},{"id":2}]`, prompt.ReasonJSONOnly},
		{"json fence", "```json\n{\"chat_id\":\"123\",\"user_id\":\"456\"}\n```", prompt.ReasonJSONOnly},
		{"JSON fence upper case", "```JSON\n[1,2,3]\n```\n", prompt.ReasonJSONOnly},
		{"bare fence", "```\n{\"a\":1}\n```", prompt.ReasonJSONOnly},
		{"tool call printed as text", `{"name":"get_weather","arguments":{"city":"Москва"}}`, prompt.ReasonJSONOnly},
		{"several objects", "{\"a\":1}\n{\"b\":2}", prompt.ReasonJSONOnly},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := prompt.CheckAnswer(tc.text)
			if ok != (tc.reason == "") || reason != tc.reason {
				t.Errorf("CheckAnswer(%q) = %v, %q; want %v, %q", tc.text, ok, reason, tc.reason == "", tc.reason)
			}
		})
	}
}

func FuzzCheckAnswer(f *testing.F) {
	for _, s := range []string{"", "{}", "```json\n{}\n```", "```", "```\n```", "[", "\u200b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ok, reason := prompt.CheckAnswer(s); ok == (reason != "") {
			t.Fatalf("CheckAnswer(%q) = %v, %q", s, ok, reason)
		}
	})
}
