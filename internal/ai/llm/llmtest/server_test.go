package llmtest

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, s *Server, body string) (*http.Response, string, error) {
	t.Helper()
	res, err := http.Post(s.URL+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

func TestUsageOnlyWhenRequested(t *testing.T) {
	s := NewServer(t)
	_, without, _ := post(t, s, `{"model":"m","stream":true,"messages":[]}`)
	if strings.Contains(without, "usage") {
		t.Errorf("usage sent though include_usage was not requested:\n%s", without)
	}
	_, with, _ := post(t, s, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`)
	if n := strings.Count(with, `"usage":null`); n != 5 { // role chunk, 3 tokens, finish chunk
		t.Errorf(`%d chunks with "usage":null, want 5:\n%s`, n, with)
	}
	if !strings.Contains(with, `"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}`+"\n\ndata: [DONE]\n\n") {
		t.Errorf("no usage chunk before [DONE]:\n%s", with)
	}
}

func TestReplayIsVerbatim(t *testing.T) {
	s := NewServer(t)
	s.Enqueue(Script{Replay: StreamA}, Script{Replay: StreamB})
	for _, want := range []string{StreamA, StreamB} {
		res, got, _ := post(t, s, `{}`)
		if got != want {
			t.Errorf("replay differs:\n%s", got)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

func TestDialects(t *testing.T) {
	cases := []struct {
		name string
		sc   Script
		want []string // substrings of the body
		not  []string
	}{
		{"CRLF and comments", Script{CRLF: true, Comments: []string{": OPENROUTER PROCESSING", ":"}},
			[]string{": OPENROUTER PROCESSING\r\n\r\n:\r\n\r\ndata: {", "}\r\n\r\n: OPENROUTER", "data: [DONE]\r\n\r\n"}, []string{"}\n", "[DONE]\r\n\r\n:"}},
		{"old Ollama", Script{RoleEveryChunk: true, FinishOnLastChunk: true},
			[]string{`"delta":{"role":"assistant","content":" llmtest."},"logprobs":null,"finish_reason":"stop"`}, []string{`"delta":{}`, `"refusal"`}},
		{"OpenAI error", Script{Break: BreakErrorOpenAI, BreakAfter: 1, ErrorMessage: "x"},
			[]string{`data: {"error": {"message": "x", "type": "server_error"}}` + "\n\n"}, []string{"[DONE]", "finish_reason\":\"stop"}},
		{"vLLM error", Script{Break: BreakErrorVLLM},
			[]string{`"code": 500}}` + "\n\ndata: [DONE]\n\n"}, nil},
		{"OpenRouter error", Script{Break: BreakErrorOpenRouter},
			[]string{": OPENROUTER PROCESSING\n\n", `"finish_reason":"error"}]}` + "\n\n"}, []string{"[DONE]"}},
		{"llama.cpp legacy error", Script{Break: BreakErrorLlamaCpp},
			[]string{"\nerror: {\"code\":500,", "\n\ndata: [DONE]\n\n"}, nil},
		{"clean EOF", Script{Break: BreakEOF, BreakAfter: 2}, []string{`"content":" from"`}, []string{"[DONE]", "llmtest."}},
		{"null error", Script{NullError: true}, []string{`"error":null}`}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer(t)
			s.Enqueue(tc.sc)
			_, body, err := post(t, s, `{"model":"m"}`)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("missing %q in:\n%s", w, body)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(body, n) {
					t.Errorf("unexpected %q in:\n%s", n, body)
				}
			}
		})
	}
}

func TestHijackCutsTheBody(t *testing.T) {
	s := NewServer(t)
	s.Enqueue(Script{Break: BreakHijack, BreakAfter: 1})
	_, body, err := post(t, s, `{}`)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(body, `"content":"Hello"`) {
		t.Errorf("err %v, body %q", err, body)
	}
}

func TestErrorsAndCapture(t *testing.T) {
	s := NewServer(t)
	s.Enqueue(RateLimited("1"))
	res, body, _ := post(t, s, `{"model":"m","temperature":0}`)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "1" || res.Header.Get("x-ratelimit-remaining-requests") != "0" ||
		res.Header.Get("x-request-id") != "req_llmtest_1" || !strings.Contains(body, "rate_limit_exceeded") {
		t.Errorf("%d %v %s", res.StatusCode, res.Header, body)
	}
	r := s.Last()
	if v, ok := r.Field("temperature"); !ok || v != 0.0 {
		t.Errorf("temperature = %v, %v", v, ok)
	}
	<-r.ContextDone()
	if _, byClient := r.ContextEnded(); byClient {
		t.Error("a served request counted as ended by the client")
	}

	res, body, _ = post(t, s, `{`)
	if res.StatusCode != 200 || s.Last().Body != nil || !strings.Contains(body, "[DONE]") {
		t.Errorf("a bad body should still stream: %d %s", res.StatusCode, body)
	}
	get, err := http.Get(s.URL + "/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !strings.Contains(string(b), `{"id":"gpt-4o-mini","object":"model"`) {
		t.Errorf("models: %s", b)
	}
	res, _ = http.Get(s.URL + "/nope")
	if res.StatusCode != 404 {
		t.Errorf("unknown path: %d", res.StatusCode)
	}
	res.Body.Close()
}

func TestTokens(t *testing.T) {
	got := Tokens("Hello  big world!")
	if strings.Join(got, "|") != "Hello|  big| world!" {
		t.Errorf("%q", got)
	}
}
