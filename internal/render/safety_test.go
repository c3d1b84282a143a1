package render

import (
	"io"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// allowedTags is every element the policy may emit. checkSafe rejects
// anything else, which is stricter than a list of forbidden tags.
var allowedTags = map[string]bool{
	"p": true, "br": true, "hr": true, "blockquote": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
	"ul": true, "ol": true, "li": true,
	"em": true, "strong": true, "del": true, "code": true, "pre": true, "span": true,
	"table": true, "thead": true, "tbody": true, "tr": true, "th": true, "td": true,
	"a": true,
}

// allowedAttrs is every attribute the policy may emit, per element.
var allowedAttrs = map[string]map[string]bool{
	"a":    {"href": true, "title": true, "rel": true, "target": true},
	"ol":   {"start": true},
	"th":   {"align": true},
	"td":   {"align": true},
	"pre":  {"class": true},
	"code": {"class": true},
	"span": {"class": true},
}

// normalizeURL approximates what a browser does before looking at a URL's
// scheme: strip leading/trailing C0 controls and spaces, drop tabs and
// newlines anywhere, lower-case.
func normalizeURL(v string) string {
	v = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, v)
	v = strings.TrimFunc(v, func(r rune) bool { return r <= ' ' })
	return strings.ToLower(v)
}

// reporter is the part of testing.TB that checkSafe needs.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// checkSafe asserts the XSS invariants on rendered HTML. It tokenizes the
// output with golang.org/x/net/html (the same HTML5 tokenizer rules a
// browser uses) and checks tags and attributes structurally; the few
// substring checks are on the raw output, where a literal "<" can only
// start a tag because text is always escaped.
func checkSafe(t reporter, input, out string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("input %q\noutput %q\n"+format, append([]any{input, out}, args...)...)
	}

	lower := strings.ToLower(out)
	for _, bad := range []string{"<script", "<img", "<iframe", "<style", "<svg", "<object", "<embed", "<form", "<input", "<math", "<!--"} {
		if strings.Contains(lower, bad) {
			fail("output contains %q", bad)
		}
	}

	z := html.NewTokenizer(strings.NewReader(out))
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				fail("tokenizer: %v", z.Err())
			}
			return
		case html.CommentToken, html.DoctypeToken:
			fail("unexpected %v token %q", tt, z.Token().Data)
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if !allowedTags[tok.Data] {
				fail("element <%s> is not allowed", tok.Data)
			}
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				key := strings.ToLower(a.Key)
				attrs[key] = a.Val
				if strings.HasPrefix(key, "on") {
					fail("event handler attribute %s=%q", a.Key, a.Val)
				}
				if key == "style" {
					fail("style attribute %q", a.Val)
				}
				if !allowedAttrs[tok.Data][key] {
					fail("attribute %s on <%s> is not allowed", key, tok.Data)
				}
				v := normalizeURL(a.Val)
				for _, scheme := range []string{"javascript:", "vbscript:", "data:"} {
					if strings.Contains(v, scheme) {
						fail("attribute %s=%q contains %s", a.Key, a.Val, scheme)
					}
				}
			}
			if tok.Data == "a" {
				checkLink(t, fail, attrs)
			}
		}
	}
}

func checkLink(t reporter, fail func(string, ...any), attrs map[string]string) {
	t.Helper()
	href, ok := attrs["href"]
	if !ok {
		fail("<a> without href")
		return
	}
	h := normalizeURL(href)
	if !strings.HasPrefix(h, "http://") && !strings.HasPrefix(h, "https://") && !strings.HasPrefix(h, "mailto:") {
		fail("href %q is not http(s)/mailto", href)
	}
	rel := map[string]bool{}
	for _, r := range strings.Fields(attrs["rel"]) {
		rel[r] = true
	}
	for _, want := range []string{"noopener", "noreferrer", "nofollow"} {
		if !rel[want] {
			fail("link rel %q lacks %s", attrs["rel"], want)
		}
	}
	if attrs["target"] != "_blank" {
		fail("link target %q, want _blank", attrs["target"])
	}
}

// xssCorpus is shared by TestXSS and the fuzz seed corpus.
var xssCorpus = []struct {
	name string
	md   string
	// wantText must appear in the output (the content survives as text).
	wantText string
}{
	{"script tag", "<script>alert(1)</script>", "alert(1)"},
	{"script inline", "hello <script>alert(1)</script> world", "world"},
	{"img onerror", "<img src=x onerror=alert(1)>", ""},
	{"img onerror inline", "text <img src=x onerror=alert(1)> text", "text"},
	{"IMG javascript src", "<IMG SRC=javascript:alert('XSS')>", ""},
	{"md link javascript", "[x](javascript:alert(1))", "x"},
	{"md link JAVASCRIPT", "[x](JAVASCRIPT:alert(1))", "x"},
	{"md link leading spaces", "[x](  javascript:alert(1))", "x"},
	{"md link angle dest", "[x](<javascript:alert(1)>)", "x"},
	{"md link vbscript", "[x](vbscript:msgbox(1))", "x"},
	{"md link entity j", "[x](&#106;avascript:alert(1))", "x"},
	{"md link hex entity", "[x](&#x6A;avascript:alert(1))", "x"},
	{"md link entity colon", "[x](javascript&colon;alert(1))", "x"},
	{"md link tab entity", "[x](jav&#x09;ascript:alert(1))", "x"},
	{"md link newline entity", "[x](java&#10;script:alert(1))", "x"},
	{"md link backslash", "[x](javascript\\:alert(1))", "x"},
	{"md link NUL", "[x](\x00javascript:alert(1))", "x"},
	{"md link percent", "[x](%6Aavascript:alert(1))", "x"},
	{"md link data html", "[x](data:text/html,<script>alert(1)</script>)", "x"},
	{"md link data base64", "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", "x"},
	{"md link relative", "[x](/admin/delete)", "x"},
	{"md link protocol relative", "[x](//evil.example/)", "x"},
	{"md link quote breakout", `[x](https://example.com"onmouseover="alert(1))`, "x"},
	{"md link title breakout", `[x](https://example.com "t\" onmouseover=\"alert(1)")`, "x"},
	{"reference link javascript", "[x][1]\n\n[1]: javascript:alert(1)", "x"},
	{"reference link data", "[x]\n\n[x]: data:text/html,<script>alert(1)</script>", "x"},
	{"image remote", "![x](https://evil.example/x.png)", "x"},
	{"image javascript", "![x](javascript:alert(1))", "x"},
	{"image data", "![x](data:image/png;base64,iVBORw0KGgo=)", "x"},
	{"image onerror alt", `![x" onerror="alert(1)](https://evil.example/x.png)`, "onerror"},
	{"image in link", "[![x](https://evil.example/x.png)](https://example.com)", "x"},
	{"link in image", "![[y](javascript:alert(1))](https://evil.example/x.png)", "y"},
	{"a href javascript", `<a href="javascript:alert(1)">x</a>`, ""},
	{"a href entity", `<a href="&#106;avascript:alert(1)">x</a>`, ""},
	{"svg onload", "<svg onload=alert(1)>", ""},
	{"svg script", "<svg><script>alert(1)</script></svg>", ""},
	{"iframe", `<iframe src="https://evil.example"></iframe>`, ""},
	{"iframe srcdoc", `<iframe srcdoc="<script>alert(1)</script>"></iframe>`, ""},
	{"style tag", "<style>body{display:none}</style>", ""},
	{"style attr", `<div style="background:url(javascript:alert(1))">x</div>`, ""},
	{"event handlers", `<p onclick="alert(1)" onmouseover=alert(1)>x</p>`, ""},
	{"details ontoggle", "<details open ontoggle=alert(1)>", ""},
	{"body onload", "<body onload=alert(1)>", ""},
	{"object", `<object data="javascript:alert(1)"></object>`, ""},
	{"embed", `<embed src="javascript:alert(1)">`, ""},
	{"form", `<form action="https://evil.example"><input name=p type=password><button>go</button></form>`, ""},
	{"base", `<base href="https://evil.example/">`, ""},
	{"meta refresh", `<meta http-equiv="refresh" content="0;url=javascript:alert(1)">`, ""},
	{"link stylesheet", `<link rel=stylesheet href="https://evil.example/x.css">`, ""},
	{"math xlink", `<math><mi xlink:href="javascript:alert(1)">x</mi></math>`, ""},
	{"noscript mxss", `<noscript><p title="</noscript><img src=x onerror=alert(1)>">`, ""},
	{"comment", "<!--<img src=x onerror=alert(1)>-->", ""},
	{"cdata", "<![CDATA[<script>alert(1)</script>]]>", ""},
	{"html block", "<div>\n<script>alert(1)</script>\n</div>", ""},
	{"autolink javascript", "<javascript:alert(1)>", "alert(1)"},
	{"autolink JAVASCRIPT", "<JAVASCRIPT:alert(1)>", "alert(1)"},
	{"autolink data", "<data:text/html,alert(1)>", "alert(1)"},
	{"autolink quote breakout", `<https://example.com/"onmouseover="alert(1)>`, "example.com"},
	{"linkify quote breakout", `www.example.com/"onmouseover="alert(1)`, "example.com"},
	{"linkify javascript", "javascript:alert(1)", "alert(1)"},
	{"code block closing tags", "```\n</code></pre><script>alert(1)</script>\n```", "alert(1)"},
	{"code block html lang", "```html\n</code><script>alert(1)</script><img src=x onerror=alert(1)>\n```", "alert"},
	{"code block info injection", "```\"><script>alert(1)</script>\nx\n```", "x"},
	{"code block info attr", "```go onload=alert(1) style=x\nx\n```", "x"},
	{"code block lang quote", "```language-\"onmouseover=\"alert(1)\nx\n```", "x"},
	{"unterminated code", "```html\n<script>alert(1)</script>", "script"},
	{"inline code", "`<script>alert(1)</script>`", "alert(1)"},
	{"table cell", "| a |\n|---|\n| <script>alert(1)</script> [x](javascript:alert(1)) |", "x"},
	{"task list", "- [x] <img src=x onerror=alert(1)>\n- [ ] [x](javascript:alert(1))", "x"},
	{"heading", "# <script>alert(1)</script>", "alert(1)"},
	{"emphasis attr", "*<span style=color:red onclick=alert(1)>x</span>*", "x"},
	{"nested quotes", "> > <iframe src=javascript:alert(1)>", ""},
	{"entity tag", "&lt;script&gt;alert(1)&lt;/script&gt;", "alert(1)"},
	{"null bytes", "<scr\x00ipt>alert(1)</scr\x00ipt>", "alert(1)"},
}

func TestXSS(t *testing.T) {
	r := New()
	for _, tc := range xssCorpus {
		t.Run(tc.name, func(t *testing.T) {
			for mode, render := range map[string]func(string) string{"HTML": r.HTML, "Partial": r.Partial} {
				out := render(tc.md)
				checkSafe(t, tc.md, out)
				if tc.wantText != "" && !strings.Contains(out, tc.wantText) {
					t.Errorf("%s(%q) = %q, want text %q to survive", mode, tc.md, out, tc.wantText)
				}
			}
		})
	}
}

// TestCheckSafeCatchesBadHTML makes sure the checker itself is not vacuous.
func TestCheckSafeCatchesBadHTML(t *testing.T) {
	for _, bad := range []string{
		`<script>alert(1)</script>`,
		`<img src=x>`,
		`<p onclick="x">a</p>`,
		`<p style="color:red">a</p>`,
		`<a href="javascript:alert(1)" rel="noopener noreferrer nofollow" target="_blank">x</a>`,
		`<a href=" JaVa&#x09;ScRiPt:alert(1)" rel="noopener noreferrer nofollow" target="_blank">x</a>`,
		`<a href="https://example.com">no rel</a>`,
		`<a href="/relative" rel="noopener noreferrer nofollow" target="_blank">x</a>`,
		`<iframe></iframe>`,
		`<div>x</div>`,
		`<!-- c -->`,
	} {
		ft := &fakeT{}
		checkSafe(ft, "", bad)
		if !ft.failed {
			t.Errorf("checkSafe accepted %q", bad)
		}
	}
}

// fakeT records failures instead of reporting them.
type fakeT struct{ failed bool }

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
