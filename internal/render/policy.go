package render

import (
	"regexp"
	"strings"

	"github.com/microcosm-cc/bluemonday"
)

var (
	reOLStart   = regexp.MustCompile(`^[0-9]{1,9}$`)
	reAlign     = regexp.MustCompile(`^(?:left|right|center)$`)
	reRel       = regexp.MustCompile(`^` + regexp.QuoteMeta(string(linkRel)) + `$`)
	reTarget    = regexp.MustCompile(`^_blank$`)
	rePreClass  = regexp.MustCompile(`^chroma$`)
	reCodeClass = regexp.MustCompile(`^language-[A-Za-z0-9_+#.-]{1,32}$`)
)

// reSpanClass matches exactly one chroma token class, or our task-list
// marker classes.
var reSpanClass = func() *regexp.Regexp {
	alts := []string{"md-task", "md-task md-task-done"}
	for _, c := range chromaClasses() {
		alts = append(alts, regexp.QuoteMeta(c))
	}
	return regexp.MustCompile(`^(?:` + strings.Join(alts, "|") + `)$`)
}()

// newPolicy returns the allow-list applied to every rendered document. It
// starts from an empty policy (not UGCPolicy) and lists exactly what our
// goldmark configuration produces; everything else is removed. Elements
// that are not allowed are stripped but their text content is kept,
// except for script/style/etc. whose content bluemonday drops too.
func newPolicy() *bluemonday.Policy {
	p := bluemonday.NewPolicy()

	p.AllowElements(
		"p", "br", "hr", "blockquote",
		"h1", "h2", "h3", "h4", "h5", "h6",
		"ul", "ol", "li",
		"em", "strong", "del", "code", "pre", "span",
		"table", "thead", "tbody", "tr", "th", "td",
	)
	p.AllowAttrs("start").Matching(reOLStart).OnElements("ol")
	p.AllowAttrs("align").Matching(reAlign).OnElements("th", "td")

	// Code: the <pre> wrapper, the language on <code>, chroma's token
	// classes on <span>. Never style attributes.
	p.AllowAttrs("class").Matching(rePreClass).OnElements("pre")
	p.AllowAttrs("class").Matching(reCodeClass).OnElements("code")
	p.AllowAttrs("class").Matching(reSpanClass).OnElements("span")

	// Links: absolute http(s) and mailto only. bluemonday parses the URL
	// (after trimming) and checks the scheme, so javascript:, data:,
	// vbscript:, relative and protocol-relative-without-scheme URLs go.
	p.AllowAttrs("href").OnElements("a")
	p.AllowAttrs("title").OnElements("a")
	p.AllowAttrs("rel").Matching(reRel).OnElements("a")
	p.AllowAttrs("target").Matching(reTarget).OnElements("a")
	p.AllowURLSchemes("http", "https", "mailto")
	p.AllowRelativeURLs(false)
	p.RequireParseableURLs(true)
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true) // also adds rel=noopener

	return p
}
