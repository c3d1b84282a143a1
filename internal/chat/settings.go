package chat

import (
	"strings"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
)

// AI modes: when the assistant answers in a chat.
const (
	ModeAlways  = "always"  // every message
	ModeMention = "mention" // only messages that mention @ai
	ModeOff     = "off"     // never
)

// Limits on settings, chosen so a prompt stays bounded.
const (
	MaxContextBytes = 8 << 10
	MaxStop         = 4
	MaxStopLen      = 64
	MaxModelLen     = 128
	MaxDepth        = 100
	MaxMaxTokens    = 128000
)

// Persona is a built-in business role for the assistant.
type Persona struct {
	Name   string `json:"name"`
	Prompt string `json:"prompt"`
}

// Personas are the built-in roles, each with its own system prompt.
var Personas = map[string]Persona{
	"assistant": {"assistant", "You are a helpful, precise assistant. Answer fully but with restraint."},
	"consultant": {"consultant", "You are a knowledgeable consultant. Ask clarifying questions when the request is ambiguous, " +
		"explain trade-offs, and recommend a course of action."},
	"seller": {"seller", "You are a friendly sales assistant. Help the customer find the right product, " +
		"describe benefits honestly, and never invent prices, stock or promises."},
	"support": {"support", "You are a patient customer-support agent. Acknowledge the problem, give clear step-by-step " +
		"help, and say when a human needs to take over."},
}

// Settings are a chat's AI settings.
type Settings struct {
	Model       string   `json:"model"`
	Temperature float64  `json:"temperature"`
	Depth       int      `json:"depth"`      // how many past messages the model sees
	Context     string   `json:"context"`    // custom instructions
	Persona     string   `json:"persona"`    // a key of Personas
	MaxTokens   int      `json:"max_tokens"` // 0: the provider's default
	Stop        []string `json:"stop"`
	AIMode      string   `json:"ai_mode"`
	// RequireAcceptance: people added to the chat are invited and join
	// only when they accept.
	RequireAcceptance bool `json:"require_acceptance"`
}

// SettingsPatch changes some settings; nil fields stay as they are.
type SettingsPatch struct {
	Model       *string   `json:"model"`
	Temperature *float64  `json:"temperature"`
	Depth       *int      `json:"depth"`
	Context     *string   `json:"context"`
	Persona     *string   `json:"persona"`
	MaxTokens   *int      `json:"max_tokens"`
	Stop        *[]string `json:"stop"`
	AIMode      *string   `json:"ai_mode"`
	// RequireAcceptance: see Settings.
	RequireAcceptance *bool `json:"require_acceptance"`
}

// Apply returns s with p's fields applied.
func (p *SettingsPatch) Apply(s Settings) Settings {
	if p == nil {
		return s
	}
	if p.Model != nil {
		s.Model = strings.TrimSpace(*p.Model)
	}
	if p.Temperature != nil {
		s.Temperature = *p.Temperature
	}
	if p.Depth != nil {
		s.Depth = *p.Depth
	}
	if p.Context != nil {
		s.Context = *p.Context
	}
	if p.Persona != nil {
		s.Persona = *p.Persona
	}
	if p.MaxTokens != nil {
		s.MaxTokens = *p.MaxTokens
	}
	if p.Stop != nil {
		s.Stop = *p.Stop
	}
	if p.AIMode != nil {
		s.AIMode = *p.AIMode
	}
	if p.RequireAcceptance != nil {
		s.RequireAcceptance = *p.RequireAcceptance
	}
	return s
}

// Validate checks every setting and names the first field that is wrong.
func (s Settings) Validate() error {
	const f = "settings."
	switch {
	case utf8.RuneCountInString(s.Model) > MaxModelLen || hasControl(s.Model):
		return apperr.Invalid(f+"model", "Model name must be at most %d printable characters.", MaxModelLen)
	case s.Temperature < 0 || s.Temperature > 2:
		return apperr.Invalid(f+"temperature", "Temperature must be between 0 and 2.")
	case s.Depth < 0 || s.Depth > MaxDepth:
		return apperr.Invalid(f+"depth", "Depth must be between 0 and %d messages.", MaxDepth)
	case len(s.Context) > MaxContextBytes:
		return apperr.Invalid(f+"context", "Context must be at most %d bytes.", MaxContextBytes)
	case !utf8.ValidString(s.Context):
		return apperr.Invalid(f+"context", "Context must be valid UTF-8 text.")
	case s.MaxTokens < 0 || s.MaxTokens > MaxMaxTokens:
		return apperr.Invalid(f+"max_tokens", "max_tokens must be between 0 (model default) and %d.", MaxMaxTokens)
	case len(s.Stop) > MaxStop:
		return apperr.Invalid(f+"stop", "At most %d stop sequences.", MaxStop)
	}
	if _, ok := Personas[s.Persona]; !ok {
		return apperr.Invalid(f+"persona", "Persona must be one of assistant, consultant, seller, support.")
	}
	switch s.AIMode {
	case ModeAlways, ModeMention, ModeOff:
	default:
		return apperr.Invalid(f+"ai_mode", "ai_mode must be always, mention or off.")
	}
	for _, st := range s.Stop {
		if st == "" || utf8.RuneCountInString(st) > MaxStopLen || !utf8.ValidString(st) {
			return apperr.Invalid(f+"stop", "Each stop sequence must be 1 to %d characters.", MaxStopLen)
		}
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
