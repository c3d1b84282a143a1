package llm

import (
	"encoding/json"
	"reflect"
	"testing"
)

var chunkCorpus = []string{
	// OpenAI: role chunk, content, finish, usage.
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764064000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764064000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" 12:1764064000123456789"},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
	`{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0}}}`,
	// Escapes, non-ASCII, invalid UTF-8, surrogates.
	`{"choices":[{"index":0,"delta":{"content":"a\"b\\c\/d\n\t\u00e9\ud83d\ude00"}}]}`,
	`{"choices":[{"index":0,"delta":{"content":"héllo — 世界"}}]}`,
	"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"bad \xff utf8\"}}]}",
	`{"choices":[{"index":0,"delta":{"content":"\ud800 lone"}}]}`,
	// Nulls and absent fields.
	`{"model":null,"choices":null,"usage":null}`,
	`{"choices":[{"index":0,"delta":null,"finish_reason":null}]}`,
	`{"choices":[{"delta":{"content":null}}]}`,
	`{}`,
	// Several choices; Ollama and vLLM shapes.
	`{"choices":[{"index":1,"delta":{"content":"x"}},{"index":0,"delta":{"content":"y"}}]}`,
	`{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"llama3","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}`,
	`{"choices":[{"index":0,"delta":{"content":"x","tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2.5e3,true,false,null]}"}}]}}],"x":[[],{},-1.5E-3]}`,
	// Case-folded keys (encoding/json matches them), wrong types,
	// duplicates, invalid JSON: scan must give up or agree.
	`{"Model":"m","CHOICES":[{"Index":0,"Delta":{"Content":"c"}}],"Usage":{"Prompt_Tokens":1}}`,
	`{"choices":[{"index":"0","delta":{"content":"x"}}]}`,
	`{"choices":[{"index":0.0,"delta":{"content":"x"}}]}`,
	`{"choices":[{"index":-0,"delta":{"content":"x"}}]}`,
	`{"choices":[{"index":01,"delta":{"content":"x"}}]}`,
	`{"choices":[{"index":0,"delta":{"content":5}}]}`,
	`{"choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{"content":"b"}}]}`,
	`{"usage":{"prompt_tokens":1},"usage":{"completion_tokens":2}}`,
	`{"choices":[{"index":0,"delta":{"content":"x"}}]} trailing`,
	`{"choices":[{"index":0,"delta":{"content":"x"}}],}`,
	`{"a":"\x"}`,
	`{"a":"\u12"}`,
	`{"a":tru}`,
	`{"a":1.}`,
	`{"a" 1}`,
	`[1]`,
	``,
	"{\"a\":\"ctl \x01\"}",
}

// scan must agree with encoding/json whenever it accepts a chunk.
func checkScan(t *testing.T, data string) {
	t.Helper()
	var fast chunk
	if !fast.scan([]byte(data)) {
		return
	}
	var want chunk
	if err := json.Unmarshal([]byte(data), &want); err != nil {
		t.Fatalf("scan accepted what encoding/json refuses (%v): %q", err, data)
	}
	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("scan of %q:\n got %+v\nwant %+v", data, fast, want)
	}
}

func TestChunkScanAgreesWithEncodingJSON(t *testing.T) {
	accepted := 0
	for _, c := range chunkCorpus {
		checkScan(t, c)
		var ch chunk
		if ch.scan([]byte(c)) {
			accepted++
		}
	}
	if accepted < 14 {
		t.Errorf("scan accepted only %d of the corpus: the fast path is not taken for the usual chunks", accepted)
	}
	// The usual content chunk takes the fast path.
	var ch chunk
	if !ch.scan([]byte(chunkCorpus[1])) || len(ch.Choices) != 1 || ch.Choices[0].Delta.Content != " 12:1764064000123456789" || ch.Model != "gpt-4o-mini" {
		t.Errorf("content chunk: %+v", ch)
	}
}

func TestChunkDecodeFallsBack(t *testing.T) {
	// A string index: encoding/json refuses it, the SDK reads it.
	var ch chunk
	if err := ch.decode([]byte(`{"choices":[{"index":"0","delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`)); err != nil {
		t.Fatal(err)
	}
	if len(ch.Choices) != 1 || ch.Choices[0].Delta.Content != "x" || ch.Usage == nil || ch.Usage.CompletionTokens != 2 {
		t.Errorf("decoded %+v", ch)
	}
	if err := ch.decode([]byte(`{"choices":[`)); err == nil {
		t.Error("truncated chunk decoded")
	}
}

func FuzzChunkScan(f *testing.F) {
	for _, c := range chunkCorpus {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data string) { checkScan(t, data) })
}

func BenchmarkChunkDecode(b *testing.B) {
	data := []byte(chunkCorpus[1])
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			var ch chunk
			if ch.decode(data) != nil {
				b.Fatal()
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var ch chunk
			if json.Unmarshal(data, &ch) != nil {
				b.Fatal()
			}
		}
	})
}
