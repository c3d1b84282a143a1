package httpapi

// The OpenAPI (Swagger 2.0) description of the REST API is generated from
// the annotations on the handlers in this package by swag, into
// openapi/swagger.json and openapi/swagger.yaml. TestOpenAPIFresh fails when
// the committed files differ from what the code generates; regenerate with:
//
//	go generate ./internal/httpapi
//
// swag's own docs.go (which registers the spec in a package variable from
// init) is not generated.
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
