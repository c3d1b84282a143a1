package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/gin-gonic/gin"
)

// decode reads one JSON object from the request body into dst. Every way a
// body can be wrong gets its own clear error naming the field where there is
// one: too large (413), not JSON, wrong type, unknown field, trailing data.
func decode(c *gin.Context, dst any) error {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return apperr.New(apperr.CodeUnsupportedMedia, "Send the body as application/json.")
		}
	}
	return decodeJSON(c.Request.Body, dst)
}

func decodeJSON(r io.Reader, dst any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err)
		}
		return apperr.Invalid("", "Request body must hold a single JSON object.")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return apperr.New(apperr.CodeTooLarge, "Request body is larger than %d bytes.", mbe.Limit)
	case errors.Is(err, io.EOF):
		return apperr.Invalid("", "Request body is required.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.Invalid("", "Request body is not valid JSON: it ends too early.")
	case errors.As(err, &syn):
		return apperr.Invalid("", "Request body is not valid JSON (at byte %d).", syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return apperr.Invalid("", "Request body must be a JSON object.")
		}
		return apperr.Invalid(field, "Field %q must be %s.", field, jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apperr.Invalid(field, "Unknown field %q.", field)
	}
	return apperr.Invalid("", "Request body is not valid JSON: %s.", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	if strings.HasPrefix(k, "int") || strings.HasPrefix(k, "uint") || strings.HasPrefix(k, "float") {
		return "a number"
	}
	return fmt.Sprintf("of type %s", k)
}
