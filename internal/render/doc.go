// Package render turns assistant answers written in Markdown into HTML that
// is safe to insert into the chat page.
//
// # Why on the server
//
// The pipeline is goldmark (CommonMark + GFM tables, strikethrough,
// autolinks, task lists) → chroma (code highlighting, CSS classes only) →
// bluemonday (allow-list sanitizer). Doing it on the server rather than in
// the browser means:
//
//   - no third-party JavaScript is committed to the repository or fetched
//     from a CDN at run time, so the page can keep a strict
//     Content-Security-Policy (no 'unsafe-inline' scripts or styles: chroma
//     emits class attributes, never style attributes, and the matching
//     stylesheet comes from [CSS] and is served as a static file);
//   - the same code and the same sanitizer policy handle stored history and
//     live streams ([Renderer.HTML] and [Renderer.Partial] share one
//     pipeline), so there is exactly one place where model output — which
//     is untrusted, because users can steer it — becomes markup, and one
//     place to test for XSS (see the corpus and the fuzz target in this
//     package's tests).
//
// # Cost
//
// Rendering costs server CPU on every call, and chroma dominates it. On
// the development machine (2 vCPU AMD EPYC) a typical 4 KB answer with two
// highlighted code blocks and a table takes about 3–4 ms (BenchmarkHTML):
// roughly 70% chroma's regexp2-based lexers, 20% bluemonday, under 10%
// goldmark. Streams cost more in total because the whole prefix is
// re-rendered on every update: [Renderer.Partial] is O(n) per call, so a
// stream re-rendered after every token is O(n²). Callers should throttle
// partial renders (e.g. at most every 150–250 ms per stream) rather than
// render per token. Highlighting is skipped for code blocks over 32 KiB,
// and the HTML is about 3× larger on the wire than the Markdown (sample answer),
// mostly because of the highlighting spans.
//
// # Defence in depth
//
//  1. goldmark runs without html.WithUnsafe, and raw HTML in the Markdown is
//     replaced by its escaped text, so it is displayed, never interpreted.
//  2. An AST pass unlinks every link whose destination is not http(s) or
//     mailto, and images are rendered as their alt text only (no remote
//     fetches, no tracking pixels).
//  3. The rendered HTML is then sanitized by a bluemonday allow-list
//     policy, so anything that slipped through the first two steps is
//     still removed: no script/style/iframe/object/form/img/input elements,
//     no event-handler or style attributes, no javascript:/data:/vbscript:
//     URLs, links carry rel="noopener noreferrer nofollow" and
//     target="_blank".
package render
