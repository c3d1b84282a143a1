package llm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
)

// Moderate asks the provider's moderation endpoint (OpenAI's
// POST /moderations) whether text is flagged, and for which categories.
// Only OpenAI serves it; other providers answer an error.
func (c *Client) Moderate(ctx context.Context, text string) (flagged bool, categories []string, err error) {
	svc := openai.NewModerationService(c.reqOpts...)
	var raw *http.Response
	res, err := svc.New(ctx, openai.ModerationNewParams{
		Input: openai.ModerationNewParamsInputUnion{OfString: param.NewOpt(text)},
		Model: openai.ModerationModelOmniModerationLatest,
	}, option.WithResponseInto(&raw))
	if err != nil {
		if raw != nil && raw.StatusCode >= 400 {
			var apiErr *openai.Error
			errors.As(err, &apiErr)
			return false, nil, c.httpError(raw, apiErr)
		}
		return false, nil, c.transportError(ctx, err, false)
	}
	for _, r := range res.Results {
		if !r.Flagged {
			continue
		}
		flagged = true
		var cats map[string]bool
		if json.Unmarshal([]byte(r.Categories.RawJSON()), &cats) == nil {
			for k, v := range cats {
				if v {
					categories = append(categories, k)
				}
			}
		}
	}
	sort.Strings(categories)
	return flagged, categories, nil
}
