package render

import (
	"bytes"

	"github.com/yuin/goldmark/ast"
)

// closeOpenFence is how [Renderer.Partial] deals with a stream that stops
// inside a fenced code block.
//
// Approach: we do not guess with a hand-written line scanner; we let
// goldmark parse the prefix and look at the last fenced code block in the
// AST (code blocks cannot nest, so the last one in document order is the
// one that ends last). If nothing but whitespace follows its last content
// line, no closing fence was seen and the block runs to the end of the
// input. We then append a closing fence:
//
//   - of the same character (` or ~) and length as the opening fence, so
//     that it is a valid closer;
//   - on a new line, indented with the opening line's container prefix
//     (blockquote '>' markers kept, list markers turned into spaces), so
//     that a fence inside "> " or a list item is closed inside that
//     container instead of ending it and opening a new, empty block;
//
// and re-parse. If the last, still unfinished line is a run of the fence
// character shorter than the fence (the closing fence arriving one
// backtick at a time), it is dropped rather than shown as code.
//
// CommonMark already ends an unclosed fence at the end of the document,
// so for goldmark this mostly makes the behaviour explicit: Partial's
// output is exactly what HTML will produce once the real closing fence
// arrives, half-typed closers do not flicker into view, and the result
// does not depend on how a parser treats an unclosed block.
//
// It returns the patched source and true, or (nil, false) when the
// input does not end inside a fenced code block.
func closeOpenFence(doc ast.Node, src []byte) ([]byte, bool) {
	var last *ast.FencedCodeBlock
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			if fc, ok := n.(*ast.FencedCodeBlock); ok {
				last = fc
				return ast.WalkSkipChildren, nil
			}
		}
		return ast.WalkContinue, nil
	})
	if last == nil {
		return nil, false
	}

	// The opening fence: goldmark records the offset of its first fence
	// character.
	pos := last.Pos()
	if pos < 0 || pos >= len(src) || (src[pos] != '`' && src[pos] != '~') {
		return nil, false
	}
	fenceChar := src[pos]
	fenceLen := 0
	for pos+fenceLen < len(src) && src[pos+fenceLen] == fenceChar {
		fenceLen++
	}
	lineStart := bytes.LastIndexByte(src[:pos], '\n') + 1
	openEnd := len(src)
	if i := bytes.IndexByte(src[pos:], '\n'); i >= 0 {
		openEnd = pos + i + 1
	}

	end := openEnd
	if lines := last.Lines(); lines.Len() > 0 {
		end = max(end, lines.At(lines.Len()-1).Stop)
	}
	if len(bytes.TrimSpace(src[end:])) != 0 {
		return nil, false // a closing fence (or the container's end) follows
	}

	// Drop a half-typed closing fence on the last, unterminated line.
	cut := len(src)
	if src[len(src)-1] != '\n' {
		ls := bytes.LastIndexByte(src, '\n') + 1
		if ls >= openEnd {
			rest := bytes.TrimLeft(src[ls:], " \t>")
			if len(rest) > 0 && len(rest) < fenceLen && len(bytes.Trim(rest, string(fenceChar))) == 0 {
				cut = ls
			}
		}
	}

	out := make([]byte, 0, cut+pos-lineStart+fenceLen+2)
	out = append(out, src[:cut]...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	for _, c := range src[lineStart:pos] {
		switch c {
		case '>', ' ', '\t':
			out = append(out, c)
		default: // list markers: "-", "*", "+", "1.", "2)"
			out = append(out, ' ')
		}
	}
	out = append(out, bytes.Repeat([]byte{fenceChar}, fenceLen)...)
	out = append(out, '\n')
	return out, true
}
