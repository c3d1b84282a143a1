package prompt

import "strings"

// Token accounting is an estimate, on purpose: the server talks to any
// OpenAI-compatible model (GPT, Llama, Qwen, Mistral through Ollama or vLLM)
// and each has its own tokenizer, so no one tokenizer would be exact either.
// The estimate is deterministic, costs one pass over the text, and errs on the
// high side: counting too many tokens drops a little more history, counting
// too few makes the upstream reject the request (context length exceeded) or
// cut the prompt itself, possibly from the front, where the rules are.

// Costs are counted in units of 1/unitsPerToken of a token, so the per-rune
// weights below stay integers and sums stay exact.
const unitsPerToken = 20

// MessageOverhead is the tokens a chat message costs besides its content: the
// role and the delimiters of the chat template (OpenAI's own accounting uses
// 3 to 4 per message).
const MessageOverhead = 4

// ReplyOverhead is the tokens the chat template spends priming the answer
// (OpenAI counts 3), added once per prompt.
const ReplyOverhead = 3

// runeUnits is what one rune costs, by the length of its UTF-8 encoding:
//
//   - 1 byte (ASCII), 5 units = 1/4 token: English prose and code average
//     about four characters per token in GPT (cl100k, o200k) and Llama 3
//     vocabularies. This is the classic bytes/4 rule.
//   - 2 bytes (Cyrillic, Greek, Hebrew, Arabic, accented Latin), 12 units =
//     0.6 token: large vocabularies fit two to three Cyrillic letters in a
//     token, but the 32k vocabularies of older local models (Llama 2,
//     Mistral 7B) often need one token per one or two letters. bytes/4 would
//     say 0.5 and undercount Russian on those; 0.6 stays on the safe side.
//   - 3 bytes (CJK, and most of the rest of the BMP), 20 units = 1 token: a
//     common CJK character is roughly 0.7 to 1 token in recent vocabularies
//     and more in small ones; bytes/4 (0.75) would undercount.
//   - 4 bytes (emoji, rare CJK), 40 units = 2 tokens: usually split into
//     several byte-level tokens.
//
// Invalid UTF-8 decodes as U+FFFD and costs a token per bad byte, which is
// what byte-level BPE does with it.
func runeUnits(r rune) int {
	switch {
	case r < 0x80:
		return 5
	case r < 0x800:
		return 12
	case r < 0x10000:
		return 20
	default:
		return 40
	}
}

// units is the cost of s in units; it is additive over concatenation, which
// is what lets Build cut the chat context to an exact size.
func units(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			// Rare in English text: fall back to decoding runes for the rest.
			for _, r := range s[i:] {
				n += runeUnits(r)
			}
			return n
		}
		n += 5
	}
	return n
}

// toTokens rounds units up to whole tokens.
func toTokens(u int) int { return (u + unitsPerToken - 1) / unitsPerToken }

// EstimateTokens approximates how many tokens s is for a typical BPE
// tokenizer, erring high (see runeUnits for the weights and why).
func EstimateTokens(s string) int { return toTokens(units(s)) }

// messageTokens is what one chat message with this content costs.
func messageTokens(content string) int { return EstimateTokens(content) + MessageOverhead }

// cutUnits returns the longest prefix of s, ending on a rune boundary, that
// costs at most maxUnits.
func cutUnits(s string, maxUnits int) string {
	n := 0
	for i, r := range s {
		n += runeUnits(r)
		if n > maxUnits {
			return s[:i]
		}
	}
	return s
}

// DefaultContextWindow is the window assumed for a model ContextWindow does
// not know: small enough for any model worth running, including a local
// model at its server's default context size.
const DefaultContextWindow = 8192

// contextWindows holds approximate context windows (prompt plus answer, in
// tokens) by model-name prefix; the longest matching prefix wins. It is
// deliberately short: an unknown model gets DefaultContextWindow, which only
// costs history, never a rejected request.
var contextWindows = []struct {
	prefix string
	tokens int
}{
	{"gpt-4o", 128000},   // gpt-4o, gpt-4o-mini and dated snapshots
	{"gpt-4.1", 1047576}, // gpt-4.1, -mini, -nano: about 1M
	{"gpt-3.5", 16385},   // gpt-3.5-turbo since 0125
	// Llama 3.1 and later accept 128k, but Ollama runs them with a much
	// smaller num_ctx unless told otherwise, so 8k is the safe figure for
	// the whole family.
	{"llama3", 8192},
	{"qwen2.5", 32768},
}

// ContextWindow returns the approximate context window, in tokens, of a model
// by name. Matching ignores case, a provider prefix ("openai/gpt-4o") and an
// Ollama tag ("llama3.1:8b" matches "llama3"); unknown models get
// DefaultContextWindow.
func ContextWindow(model string) int {
	name := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	best, tokens := 0, DefaultContextWindow
	for _, w := range contextWindows {
		if len(w.prefix) > best && strings.HasPrefix(name, w.prefix) {
			best, tokens = len(w.prefix), w.tokens
		}
	}
	return tokens
}

// DefaultAnswerReserve is the tokens PromptBudget keeps for the answer when a
// chat's max_tokens is 0 (the provider's default, which we cannot know).
const DefaultAnswerReserve = 1024

// PromptBudget is the Input.Budget for a model and a chat's max_tokens: the
// model's context window minus the room kept for the answer. The reserve is
// capped at half the window so a max_tokens larger than the model allows
// still leaves the prompt room; the caller should also cap the max_tokens it
// sends at ContextWindow(model) - Stats.Tokens.
func PromptBudget(model string, maxTokens int) int {
	window := ContextWindow(model)
	reserve := maxTokens
	if reserve <= 0 {
		reserve = DefaultAnswerReserve
	}
	return window - min(reserve, window/2)
}
