package render

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/html"
)

func TestHTMLFeatures(t *testing.T) {
	r := New()
	tests := []struct {
		name    string
		md      string
		want    []string // substrings of the output, in order
		notWant []string
	}{
		{
			name: "headings",
			md:   "# One\n\n## Two\n\n###### Six\n\nSetext\n======\n",
			want: []string{"<h1>One</h1>", "<h2>Two</h2>", "<h6>Six</h6>", "<h1>Setext</h1>"},
		},
		{
			name: "emphasis and strikethrough",
			md:   "*em* **strong** ~~gone~~",
			want: []string{"<em>em</em>", "<strong>strong</strong>", "<del>gone</del>"},
		},
		{
			name: "unordered list",
			md:   "- a\n- b\n  - nested\n",
			want: []string{"<ul>", "<li>a</li>", "<li>b", "<ul>", "<li>nested</li>"},
		},
		{
			name: "ordered list with start",
			md:   "3. three\n4. four\n",
			want: []string{`<ol start="3">`, "<li>three</li>", "<li>four</li>", "</ol>"},
		},
		{
			name:    "task list",
			md:      "- [x] done\n- [ ] todo\n",
			want:    []string{`<span class="md-task md-task-done">☑</span> done`, `<span class="md-task">☐</span> todo`},
			notWant: []string{"<input"},
		},
		{
			name: "table with alignment",
			md:   "| Name | Qty |\n|:-----|----:|\n| `a` | 1 |\n| b | 22 |\n",
			want: []string{"<table>", "<thead>", `<th align="left">Name</th>`, `<th align="right">Qty</th>`,
				"<tbody>", `<td align="left"><code>a</code></td>`, `<td align="right">22</td>`, "</table>"},
			notWant: []string{"style="},
		},
		{
			name: "link",
			md:   `[docs](https://example.com/docs?a=1&b=2 "Title")`,
			want: []string{`<a href="https://example.com/docs?a=1&amp;b=2" title="Title" rel="noopener noreferrer nofollow" target="_blank">docs</a>`},
		},
		{
			name: "mailto link",
			md:   "[mail](mailto:someone@example.com)",
			want: []string{`<a href="mailto:someone@example.com" rel="noopener noreferrer nofollow" target="_blank">mail</a>`},
		},
		{
			name: "autolinks",
			md:   "<https://example.com> and www.example.org and someone@example.com",
			want: []string{`<a href="https://example.com"`, `>https://example.com</a>`,
				`<a href="http://www.example.org"`, `<a href="mailto:someone@example.com"`},
		},
		{
			name:    "relative link is unlinked",
			md:      "[home](/home)",
			want:    []string{"<p>home</p>"},
			notWant: []string{"<a"},
		},
		{
			name:    "image keeps alt text only",
			md:      "before ![a *cat*](https://example.com/cat.png) after",
			want:    []string{"before a <em>cat</em> after"},
			notWant: []string{"<img", "cat.png"},
		},
		{
			name: "inline code",
			md:   "use `fmt.Println(\"<b>\")` here",
			want: []string{"<code>fmt.Println(&#34;&lt;b&gt;&#34;)</code>"},
		},
		{
			name: "fenced code highlighted",
			md:   "```go\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n```\n",
			want: []string{`<pre class="chroma"><code class="language-go">`, `<span class="kd">func</span>`,
				`<span class="nf">main</span>`, `<span class="s">&#34;hi&#34;</span>`, "</code></pre>"},
			notWant: []string{"style="},
		},
		{
			name: "fenced code language alias and case",
			md:   "```Python\nprint(1)\n```\n",
			want: []string{`<code class="language-Python">`, `<span class="nb">print</span>`},
		},
		{
			name: "tilde fence",
			md:   "~~~js\nlet x = 1\n~~~\n",
			want: []string{`<code class="language-js">`, `<span class="kd">let</span>`},
		},
		{
			name:    "fenced code unknown language",
			md:      "```nosuchlanguage\na < b\n```\n",
			want:    []string{`<pre class="chroma"><code class="language-nosuchlanguage">a &lt; b` + "\n</code></pre>"},
			notWant: []string{"<span"},
		},
		{
			name: "fenced code without language",
			md:   "```\nplain <text>\n```\n",
			want: []string{"<pre class=\"chroma\"><code>plain &lt;text&gt;\n</code></pre>"},
		},
		{
			name: "indented code",
			md:   "para\n\n    code <x>\n",
			want: []string{"<pre><code>code &lt;x&gt;\n</code></pre>"},
		},
		{
			name: "blockquote and rule",
			md:   "> quoted\n\n---\n",
			want: []string{"<blockquote>", "<p>quoted</p>", "</blockquote>", "<hr>"},
		},
		{
			name: "hard line break",
			md:   "a  \nb",
			want: []string{"a<br>", "b"},
		},
		{
			name: "raw html is shown, not interpreted",
			md:   "press <kbd>Ctrl</kbd>",
			want: []string{"press &lt;kbd&gt;Ctrl&lt;/kbd&gt;"},
		},
		{
			name: "no heading ids",
			md:   "# Title",
			want: []string{"<h1>Title</h1>"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := r.HTML(tc.md)
			checkSafe(t, tc.md, out)
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("HTML(%q) =\n%s\nwant (in order) %q", tc.md, out, w)
				}
				rest = rest[i+len(w):]
			}
			for _, nw := range tc.notWant {
				if strings.Contains(out, nw) {
					t.Errorf("HTML(%q) =\n%s\nmust not contain %q", tc.md, out, nw)
				}
			}
		})
	}
}

// TestCodeClasses checks structurally that highlighted code uses only class
// attributes and that every class is one the CSS defines or chroma emits.
func TestCodeClasses(t *testing.T) {
	r := New()
	out := r.HTML(sampleAnswer())
	classes := map[string]bool{}
	for _, c := range chromaClasses() {
		classes[c] = true
	}
	z := html.NewTokenizer(strings.NewReader(out))
	spans := 0
	for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
		if tt != html.StartTagToken {
			continue
		}
		tok := z.Token()
		for _, a := range tok.Attr {
			if a.Key == "style" {
				t.Fatalf("style attribute on <%s>", tok.Data)
			}
			if tok.Data == "span" && a.Key == "class" {
				spans++
				if !classes[a.Val] {
					t.Errorf("unexpected span class %q", a.Val)
				}
			}
		}
	}
	if spans < 20 {
		t.Errorf("only %d highlighted spans in sample answer", spans)
	}
	css := CSS("github")
	for _, c := range []string{"kd", "nf", "s", "k"} {
		if !strings.Contains(css, ".chroma ."+c+" {") {
			t.Errorf("CSS lacks rule for .%s", c)
		}
	}
}

func TestHighlightLimits(t *testing.T) {
	r := New()
	big := "```go\n" + strings.Repeat("x := 1\n", maxHighlightBytes/7+1) + "```\n"
	out := r.HTML(big)
	if strings.Contains(out, "<span") {
		t.Error("oversized code block was highlighted")
	}
	if !strings.HasPrefix(out, `<pre class="chroma"><code class="language-go">x := 1`) {
		t.Errorf("oversized block not rendered as plain code: %.80q", out)
	}

	long := "```" + strings.Repeat("a", maxLangLen+1) + "\nx\n```\n"
	if out := r.HTML(long); strings.Contains(out, "language-") {
		t.Errorf("overlong language kept: %q", out)
	}
}

func TestCleanLang(t *testing.T) {
	tests := map[string]string{
		"go":          "go",
		"c++":         "c++",
		"c#":          "c#",
		"objective-c": "objective-c",
		"x.y_z":       "x.y_z",
		`"><script>`:  "",
		"a b":         "",
		"é":           "",
		"":            "",
	}
	for in, want := range tests {
		if got := cleanLang([]byte(in)); got != want {
			t.Errorf("cleanLang(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPartial(t *testing.T) {
	r := New()
	tests := []struct {
		name string
		md   string
		// same is the Markdown whose HTML Partial(md) must equal.
		same string
	}{
		{"complete text unchanged", "# Hi\n\nsome *text*\n", "# Hi\n\nsome *text*\n"},
		{"complete fence unchanged", "```go\nx := 1\n```\n\nafter", "```go\nx := 1\n```\n\nafter"},
		{"unterminated fence", "intro\n\n```go\nfunc main() {\n\tx := 1", "intro\n\n```go\nfunc main() {\n\tx := 1\n```\n"},
		{"unterminated fence trailing newline", "```go\nx := 1\n", "```go\nx := 1\n```\n"},
		{"only opening line", "text\n\n```python", "text\n\n```python\n```\n"},
		{"only opening line newline", "text\n\n```python\n", "text\n\n```python\n```\n"},
		{"half-typed closer", "```go\nx := 1\n``", "```go\nx := 1\n```\n"},
		{"half-typed closer single", "```go\nx := 1\n`", "```go\nx := 1\n```\n"},
		{"long fence", "````md\n```go\ninner\n```\n", "````md\n```go\ninner\n```\n````\n"},
		{"long fence short closer typing", "````md\nx\n```", "````md\nx\n````\n"},
		{"long fence short closer line", "````md\nx\n```\n", "````md\nx\n```\n````\n"},
		{"tilde fence", "~~~js\nlet x", "~~~js\nlet x\n~~~\n"},
		{"second fence open", "```go\na\n```\n\ntext\n\n```js\nb", "```go\na\n```\n\ntext\n\n```js\nb\n```\n"},
		{"list item fence", "1. step\n\n   ```bash\n   npm i", "1. step\n\n   ```bash\n   npm i\n   ```\n"},
		{"bullet fence", "- ```sh\n  ls", "- ```sh\n  ls\n  ```\n"},
		{"blockquote fence", "> ```js\n> let x", "> ```js\n> let x\n> ```\n"},
		{"quote in list fence", "- > ```js\n  > let x", "- > ```js\n  > let x\n  > ```\n"},
		{"fence ended by container", "> ```js\n> let x\n\nafter", "> ```js\n> let x\n\nafter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Partial(tc.md)
			want := r.HTML(tc.same)
			if got != want {
				t.Errorf("Partial(%q) =\n%s\nwant HTML(%q) =\n%s", tc.md, got, tc.same, want)
			}
			checkSafe(t, tc.md, got)
			if n, m := strings.Count(got, "<pre"), strings.Count(got, "</pre>"); n != m {
				t.Errorf("unbalanced pre: %d open, %d close", n, m)
			}
		})
	}
}

// TestPartialDoesNotSwallow streams a document and checks that once the
// closing fence has arrived, the text after it is rendered as Markdown,
// not as code, and that every prefix is safe and well-formed.
func TestPartialDoesNotSwallow(t *testing.T) {
	r := New()
	doc := "Intro **bold**\n\n```go\nfunc main() {}\n```\n\nAfter the code, a [link](https://example.com).\n\n- item\n"
	closeAt := strings.Index(doc, "```\n\nAfter") + 3
	for i := 1; i <= len(doc); i++ {
		prefix := doc[:i]
		out := r.Partial(prefix)
		checkSafe(t, prefix, out)
		if n, m := strings.Count(out, "<pre"), strings.Count(out, "</pre>"); n != m || n > 1 {
			t.Fatalf("Partial(%q): %d <pre>, %d </pre>:\n%s", prefix, n, m, out)
		}
		if i > closeAt+len("\n\nAfter") {
			code := out[strings.Index(out, "<pre"):strings.Index(out, "</pre>")]
			if strings.Contains(code, "After") {
				t.Fatalf("Partial(%q): text after the fence rendered as code:\n%s", prefix, out)
			}
		}
	}
	if got, want := r.Partial(doc), r.HTML(doc); got != want {
		t.Errorf("Partial(complete) != HTML(complete):\n%s\n%s", got, want)
	}
}

func TestCloseOpenFence(t *testing.T) {
	r := New()
	tests := []struct {
		md, want string
		ok       bool
	}{
		{"no code", "", false},
		{"```\nclosed\n```", "", false},
		{"```\nclosed\n```\n\n", "", false},
		{"```go\nopen", "```go\nopen\n```\n", true},
		{"```go\nopen\n", "```go\nopen\n```\n", true},
		{"```go\nopen\n``", "```go\nopen\n```\n", true},
		{"````\nopen\n```", "````\nopen\n````\n", true},
		{"````\nopen\n```\n", "````\nopen\n```\n````\n", true},
		{"~~~\nopen", "~~~\nopen\n~~~\n", true},
		{"> ```\n> open", "> ```\n> open\n> ```\n", true},
		{"10. ```\n    open", "10. ```\n    open\n    ```\n", true},
		{"```", "```\n```\n", true},
	}
	for _, tc := range tests {
		src := []byte(tc.md)
		got, ok := closeOpenFence(r.parse(src), src)
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("closeOpenFence(%q) = %q, %v; want %q, %v", tc.md, got, ok, tc.want, tc.ok)
		}
	}
}

// TestPolicyAlone feeds hostile HTML straight into the sanitizer, as if the
// Markdown layer had let it through, to show the second layer holds on its
// own.
func TestPolicyAlone(t *testing.T) {
	p := newPolicy()
	for _, in := range []string{
		`<script>alert(1)</script><p>x</p>`,
		`<img src=x onerror=alert(1)>`,
		`<img src="https://evil.example/x.png" alt="x">`,
		`<a href="javascript:alert(1)">x</a>`,
		`<a href="JAVASCRIPT:alert(1)">x</a>`,
		`<a href="  javascript:alert(1)">x</a>`,
		`<a href="&#106;avascript:alert(1)">x</a>`,
		`<a href="java&#x09;script:alert(1)">x</a>`,
		`<a href="data:text/html,<script>alert(1)</script>">x</a>`,
		`<a href="vbscript:msgbox(1)">x</a>`,
		`<a href="https://example.com" onclick="alert(1)" target="_self" rel="opener">x</a>`,
		`<svg onload=alert(1)><circle/></svg>`,
		`<iframe src="https://evil.example"></iframe>`,
		`<style>*{display:none}</style>`,
		`<p style="color:red" onmouseover="alert(1)">x</p>`,
		`<span class="k" style="x">k</span><span class="evil">e</span>`,
		`<code class="language-go&quot; onclick=&quot;x">c</code>`,
		`<pre class="chroma other">p</pre>`,
		`<input type="checkbox" checked><form><button>b</button></form>`,
		`<object data="x"></object><embed src="x"><math><mi>x</mi></math>`,
		`<td style="text-align:left" align="javascript:x">c</td>`,
		`<!-- <script>alert(1)</script> -->`,
		`<noscript><p title="</noscript><img src=x onerror=alert(1)>">`,
	} {
		checkSafe(t, in, p.Sanitize(in))
	}
}

func TestConcurrent(t *testing.T) {
	r := New()
	inputs := []string{sampleAnswer(), sampleAnswer()[:2500]}
	for _, tc := range xssCorpus {
		inputs = append(inputs, tc.md)
	}
	type result struct{ html, partial string }
	want := make([]result, len(inputs))
	for i, in := range inputs {
		want[i] = result{r.HTML(in), r.Partial(in)}
	}

	// A fresh renderer, so that lazy initialisation inside goldmark,
	// chroma's lexers and the lexer cache also happens concurrently.
	r2 := New()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		wg.Go(func() {
			for j := range len(inputs) {
				i := (j + w) % len(inputs)
				got := result{r2.HTML(inputs[i]), r2.Partial(inputs[i])}
				if got != want[i] {
					errs <- fmt.Sprintf("worker %d input %d: output differs from sequential run", w, i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestCSS(t *testing.T) {
	css := CSS("github")
	if strings.Contains(css, "style=") || strings.Contains(css, "<") {
		t.Fatal("CSS contains markup")
	}
	i := strings.Index(css, "@media (prefers-color-scheme: dark) {")
	if i < 0 {
		t.Fatalf("no dark media query:\n%s", css)
	}
	light, dark := css[:i], css[i:]
	if !strings.Contains(light, "#f7f7f7") { // github background
		t.Error("light block is not github")
	}
	if !strings.Contains(dark, "#0d1117") { // github-dark background
		t.Error("dark block is not github-dark")
	}
	if strings.Count(css, "{") != strings.Count(css, "}") {
		t.Error("unbalanced braces")
	}
	// Every selector the light theme styles must be restyled in dark mode,
	// or light colours leak into the dark theme.
	darkSel := selectors(dark)
	for _, sel := range selectorList(light) {
		if !darkSel[sel] && sel != ".bg" {
			t.Errorf("selector %s styled in light mode only", sel)
		}
	}
	// The dark name gives the same pair; a style without a counterpart
	// has no media query; unknown names fall back to github.
	if CSS("github-dark") != css {
		t.Error(`CSS("github-dark") != CSS("github")`)
	}
	if m := CSS("dracula"); strings.Contains(m, "@media") || !strings.Contains(m, ".chroma .k") {
		t.Errorf("dracula CSS unexpected:\n%.200s", m)
	}
	if CSS("no-such-style") != css {
		t.Error("unknown style does not fall back to github")
	}
}

// TestNoInlineStyles makes sure nothing in a full render would need
// style-src 'unsafe-inline'.
func TestNoInlineStyles(t *testing.T) {
	out := New().HTML(sampleAnswer())
	if regexp.MustCompile(`(?i)\sstyle\s*=`).MatchString(out) {
		t.Fatal("output has a style attribute")
	}
}
