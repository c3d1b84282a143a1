package render

import (
	"bytes"
	"html"
	"sync"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// Renderer converts Markdown to sanitized HTML. Build it once with [New];
// it is safe for concurrent use by multiple goroutines.
type Renderer struct {
	md     goldmark.Markdown
	policy *bluemonday.Policy
	bufs   sync.Pool
}

// New builds the goldmark pipeline (with chroma highlighting) and the
// bluemonday policy. Both are immutable afterwards, so one Renderer can be
// shared by the whole process.
func New() *Renderer {
	md := goldmark.New(
		goldmark.WithExtensions(
			extension.NewTable(extension.WithTableCellAlignMethod(extension.TableCellAlignAttribute)),
			extension.Strikethrough,
			extension.Linkify,
			extension.TaskList,
		),
		goldmark.WithParserOptions(
			parser.WithASTTransformers(util.Prioritized(linkGuard{}, 1000)),
		),
		goldmark.WithRendererOptions(
			// A lower priority value registers later and therefore wins
			// over goldmark's own renderers (priority 1000) and the GFM
			// extension renderers (priority 500).
			renderer.WithNodeRenderers(util.Prioritized(newNodeRenderer(), 100)),
		),
	)
	r := &Renderer{md: md, policy: newPolicy()}
	r.bufs.New = func() any { return new(bytes.Buffer) }
	return r
}

// HTML renders a complete Markdown document and returns sanitized HTML.
func (r *Renderer) HTML(markdown string) string {
	src := []byte(markdown)
	return r.render(src, r.parse(src))
}

// Partial renders Markdown that is still being streamed. The text is
// rendered as if it were complete, except that a fenced code block left
// open at the end is closed explicitly, so half a code block never
// swallows (or changes the meaning of) what follows once more text
// arrives. Approach, in short (details in closeOpenFence):
//
//  1. parse with goldmark and take the last fenced code block in the AST;
//  2. if only whitespace follows its last line, no closing fence was seen;
//  3. append a closing fence with the same character and length as the
//     opening one, indented with the opening line's container prefix
//     (blockquote markers kept, list markers turned into spaces) so that
//     it closes the block inside its list item or quote;
//  4. drop a trailing, still unterminated line that is a run of fence
//     characters shorter than the fence (a closing fence being typed);
//  5. re-parse the patched text and render it through the same pipeline
//     and sanitizer as HTML.
//
// Once the real closing fence arrives, Partial(s) == HTML(s). Other
// unfinished constructs (an open "**", a half-written link) are rendered
// literally until they complete, as CommonMark prescribes.
func (r *Renderer) Partial(markdown string) string {
	src := []byte(markdown)
	doc := r.parse(src)
	if fixed, ok := closeOpenFence(doc, src); ok {
		src = fixed
		doc = r.parse(src)
	}
	return r.render(src, doc)
}

func (r *Renderer) parse(src []byte) ast.Node {
	return r.md.Parser().Parse(text.NewReader(src))
}

func (r *Renderer) render(src []byte, doc ast.Node) string {
	buf := r.bufs.Get().(*bytes.Buffer)
	defer func() {
		// Do not keep huge buffers alive in the pool.
		if buf.Cap() <= 1<<20 {
			buf.Reset()
			r.bufs.Put(buf)
		}
	}()
	buf.Reset()
	if err := r.md.Renderer().Render(buf, src, doc); err != nil {
		// Rendering into a bytes.Buffer cannot fail today; if it ever
		// does, show the source as escaped text rather than nothing.
		return "<p>" + html.EscapeString(string(src)) + "</p>\n"
	}
	return string(r.policy.SanitizeBytes(buf.Bytes()))
}
