package httpapi

import (
	"compress/gzip"
	_ "embed"
	"io"
	"net/http"
	"strings"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/gin-gonic/gin"
	swaggerui "github.com/swaggest/swgui/v5/static"
)

// The OpenAPI (Swagger 2.0) description of the REST API is generated from
// the annotations on the handlers in this package by swag, into
// openapi/swagger.json and openapi/swagger.yaml. TestOpenAPIFresh fails when
// the committed files differ from what the code generates; regenerate with:
//
//	go generate ./internal/httpapi
//
// swag's own docs.go (which registers the spec in a package variable from
// init) is not generated: the JSON is embedded below and served as it is.
// --dir names this package and every package whose types the API sends or
// receives (swag parses only those, which is quicker than
// --parseDependency); a handler that uses a type from another package needs
// that package added there.
//
//go:generate go tool swag init --quiet --dir .,../auth,../chat,../social,../ai,../admin,../search --generalInfo openapi.go --output openapi --outputTypes json,yaml --parseInternal

// General API information, read by swag.
//
// @title						aichat API
// @version					1
// @description				The REST API of aichat, a self-hosted real-time AI chat server. Real-time events and commands go over the WebSocket at /ws (see docs/protocol.md); this document covers the JSON API.
// @description				Every error answers JSON {"code":"area.reason","message":"..."} (schema Error) with the HTTP status that the code maps to; field names the request field at fault when there is one, and request_id matches the X-Request-ID response header. Answers with status 401 carry WWW-Authenticate; 429 and some 503 carry Retry-After.
// @BasePath					/
// @securityDefinitions.apikey	BearerAuth
// @in							header
// @name						Authorization
// @description				An access token (JWT) from POST /api/v1/auth/login, /register or /refresh, sent as "Bearer <access_token>".
// @securityDefinitions.apikey	BotAPIKey
// @in							header
// @name						Authorization
// @description				A bot's API key (issued by an admin with POST /api/v1/admin/bots/{id}/keys), sent as "Bearer <key>" in the same header. A key may only call the operations that list BotAPIKey, and only for the chats it names.

//go:embed openapi/swagger.json
var openAPISpec []byte

// swaggerCSP is the Content-Security-Policy of /swagger/*. Swagger UI's
// scripts and styles are files served from here (nothing inline, no other
// host); it fetches the spec from this origin, and its stylesheet uses data:
// images for icons.
const swaggerCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// swaggerIndex is the Swagger UI page; swagger-init.js starts it, since the
// CSP allows no inline script.
const swaggerIndex = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>aichat API</title>
<link rel="stylesheet" href="swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script>
<script src="swagger-init.js"></script>
</body>
</html>
`

// swaggerInit points Swagger UI at this server's spec. validatorUrl null
// keeps it from loading a badge from a remote validator.
const swaggerInit = `window.ui = SwaggerUIBundle({
  url: "doc.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
`

// swaggerAssets are the files of Swagger UI that the page uses, by the
// name they are served under. github.com/swaggest/swgui/v5/static embeds
// them gzipped (about 0.5 MB in the binary); nothing else of it is served.
var swaggerAssets = map[string]string{
	"swagger-ui.css":       "text/css; charset=utf-8",
	"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}

// handleSwagger serves the spec at /swagger/doc.json and Swagger UI at
// /swagger/index.html, with a CSP of their own.
func (s *server) handleSwagger(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("path"), "/")
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", swaggerCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	switch name {
	case "":
		c.Redirect(http.StatusFound, "/swagger/index.html")
	case "index.html":
		h.Set("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(swaggerIndex))
	case "swagger-init.js":
		h.Set("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "text/javascript; charset=utf-8", []byte(swaggerInit))
	case "doc.json":
		h.Set("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "application/json; charset=utf-8", openAPISpec)
	default:
		ctype, ok := swaggerAssets[name]
		if !ok {
			s.writeError(c, apperr.New(apperr.CodeNotFound, "No such file: /swagger/%s.", name))
			return
		}
		if err := serveGzipped(c, name+".gz", ctype); err != nil {
			s.writeError(c, err)
		}
	}
}

// serveGzipped sends an embedded .gz file as it is to clients that accept
// gzip (all browsers), and unpacked to the others.
func serveGzipped(c *gin.Context, name, ctype string) error {
	f, err := swaggerui.FS.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := c.Writer.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("Vary", "Accept-Encoding")
	var body io.Reader = f
	if strings.Contains(c.GetHeader("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
	} else {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		body = zr
	}
	c.Status(http.StatusOK)
	_, _ = io.Copy(c.Writer, body)
	return nil
}
