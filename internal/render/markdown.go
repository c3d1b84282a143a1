package render

import (
	"bytes"
	"net/url"
	"strings"

	"github.com/yuin/goldmark/ast"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// Link attributes added to every link that survives; the sanitizer
// enforces the same values.
var (
	linkRel    = []byte("noopener noreferrer nofollow")
	linkTarget = []byte("_blank")
)

// allowedURL reports whether a link destination uses one of the schemes we
// link to. It is an allow-list on the decoded destination (goldmark has
// already resolved entities and backslash escapes), so case tricks,
// &#106;avascript: and friends all fail it. The URL must also parse the
// way the sanitizer parses it; otherwise bluemonday would drop the href
// and leave an <a> without one.
func allowedURL(dest []byte) bool {
	u, err := url.Parse(string(util.URLEscape(dest, true)))
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u.Host != ""
	case "mailto":
		return true
	}
	return false
}

// linkGuard is an AST transformer that unlinks links whose destination is
// not http(s)/mailto (their text stays, as plain text) and stamps the
// rel/target attributes on the rest. The sanitizer repeats both checks.
type linkGuard struct{}

func (linkGuard) Transform(doc *ast.Document, reader text.Reader, _ parser.Context) {
	src := reader.Source()
	var unlink []ast.Node
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch l := n.(type) {
		case *ast.Link:
			if !allowedURL(l.Destination) {
				unlink = append(unlink, n)
				return ast.WalkContinue, nil
			}
		case *ast.AutoLink:
			// Email autolinks are rendered with a mailto: prefix.
			if l.AutoLinkType != ast.AutoLinkEmail && !allowedURL(l.URL(src)) {
				unlink = append(unlink, n)
				return ast.WalkSkipChildren, nil
			}
		default:
			return ast.WalkContinue, nil
		}
		n.SetAttributeString("rel", linkRel)
		n.SetAttributeString("target", linkTarget)
		return ast.WalkContinue, nil
	})
	for _, n := range unlink {
		parent := n.Parent()
		if parent == nil {
			continue
		}
		if al, ok := n.(*ast.AutoLink); ok {
			s := ast.NewString(al.Label(src))
			s.SetRaw(true) // escaped on output, no entity resolution
			parent.ReplaceChild(parent, n, s)
			continue
		}
		for c := n.FirstChild(); c != nil; {
			next := c.NextSibling()
			parent.InsertBefore(parent, n, c)
			c = next
		}
		parent.RemoveChild(parent, n)
	}
}

// nodeRenderer overrides goldmark's HTML for the node kinds where we want
// different (safer) output than CommonMark's default.
type nodeRenderer struct {
	hl *highlighter
}

func newNodeRenderer() *nodeRenderer {
	return &nodeRenderer{hl: newHighlighter()}
}

func (r *nodeRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindFencedCodeBlock, r.renderFencedCode)
	reg.Register(ast.KindImage, r.renderImage)
	reg.Register(ast.KindRawHTML, r.renderRawHTML)
	reg.Register(ast.KindHTMLBlock, r.renderHTMLBlock)
	reg.Register(east.KindTaskCheckBox, r.renderTaskCheckBox)
}

// renderImage drops the <img> and keeps only its alt text: the children
// of an Image node are its description, rendered as ordinary inlines.
// Loading remote images would leak the reader's IP address and allow
// tracking pixels, so we never emit them.
func (r *nodeRenderer) renderImage(_ util.BufWriter, _ []byte, _ ast.Node, _ bool) (ast.WalkStatus, error) {
	return ast.WalkContinue, nil
}

// renderRawHTML shows inline raw HTML as text instead of dropping it, so an
// answer that mentions <br> without backticks still reads correctly.
func (r *nodeRenderer) renderRawHTML(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkSkipChildren, nil
	}
	n := node.(*ast.RawHTML)
	for i := range n.Segments.Len() {
		seg := n.Segments.At(i)
		_, _ = w.Write(util.EscapeHTML(seg.Value(source)))
	}
	return ast.WalkSkipChildren, nil
}

// renderHTMLBlock shows a raw HTML block as an escaped paragraph.
func (r *nodeRenderer) renderHTMLBlock(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	n := node.(*ast.HTMLBlock)
	var b bytes.Buffer
	for i := range n.Lines().Len() {
		seg := n.Lines().At(i)
		b.Write(seg.Value(source))
	}
	if n.HasClosure() {
		b.Write(n.ClosureLine.Value(source))
	}
	content := bytes.TrimRight(b.Bytes(), " \t\r\n")
	_, _ = w.WriteString("<p>")
	_, _ = w.Write(util.EscapeHTML(content))
	_, _ = w.WriteString("</p>\n")
	return ast.WalkSkipChildren, nil
}

// renderTaskCheckBox renders a GFM task-list marker as a span with a
// ballot-box character instead of an <input>: the sanitizer allows no form
// controls at all. Style via .md-task / .md-task-done.
func (r *nodeRenderer) renderTaskCheckBox(w util.BufWriter, _ []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	if node.(*east.TaskCheckBox).IsChecked {
		_, _ = w.WriteString(`<span class="md-task md-task-done">☑</span> `)
	} else {
		_, _ = w.WriteString(`<span class="md-task">☐</span> `)
	}
	return ast.WalkContinue, nil
}

// renderFencedCode highlights a fenced code block with chroma.
func (r *nodeRenderer) renderFencedCode(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	n := node.(*ast.FencedCodeBlock)
	var code bytes.Buffer
	for i := range n.Lines().Len() {
		seg := n.Lines().At(i)
		code.Write(seg.Value(source))
	}
	lang := ""
	if n.Info != nil {
		lang = cleanLang(n.Language(source))
	}
	r.hl.write(w, lang, code.String())
	return ast.WalkSkipChildren, nil
}

// cleanLang keeps a fence's language only if it is a plausible language
// name, so that it can be used verbatim in a class attribute.
func cleanLang(b []byte) string {
	if len(b) == 0 || len(b) > maxLangLen {
		return ""
	}
	for _, c := range b {
		if !isLangByte(c) {
			return ""
		}
	}
	return string(b)
}

const maxLangLen = 32

func isLangByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '+' || c == '#' || c == '.'
}
