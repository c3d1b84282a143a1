package render

import (
	"strings"
	"testing"
)

// sampleAnswer is a typical ~4 KB assistant answer: prose, a list, a table
// and two fenced code blocks (Go and Python).
func sampleAnswer() string {
	var b strings.Builder
	b.WriteString("## Reading a file line by line\n\n")
	b.WriteString("Here is how to read a large file **without** loading it into memory. ")
	b.WriteString("The idea is to wrap the file in a `bufio.Scanner` and process one line at a time; ")
	b.WriteString("see the [bufio docs](https://pkg.go.dev/bufio) for details.\n\n")
	b.WriteString("1. Open the file with `os.Open`.\n2. Create a scanner and raise its buffer if lines are long.\n")
	b.WriteString("3. Loop over `scanner.Scan()` and check `scanner.Err()` afterwards.\n\n")
	b.WriteString("```go\npackage main\n\nimport (\n\t\"bufio\"\n\t\"fmt\"\n\t\"log\"\n\t\"os\"\n)\n\n")
	b.WriteString("func main() {\n\tf, err := os.Open(\"access.log\")\n\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n\tdefer f.Close()\n\n")
	b.WriteString("\tsc := bufio.NewScanner(f)\n\tsc.Buffer(make([]byte, 64*1024), 1024*1024)\n\tn := 0\n")
	b.WriteString("\tfor sc.Scan() {\n\t\tline := sc.Text()\n\t\tif len(line) > 0 && line[0] == '#' {\n\t\t\tcontinue // skip comments\n\t\t}\n\t\tn++\n\t}\n")
	b.WriteString("\tif err := sc.Err(); err != nil {\n\t\tlog.Fatal(err)\n\t}\n\tfmt.Printf(\"%d lines\\n\", n)\n}\n```\n\n")
	b.WriteString("### Comparison\n\n")
	b.WriteString("| Approach | Memory | Speed | Notes |\n|:--|--:|--:|:--|\n")
	b.WriteString("| `os.ReadFile` | O(n) | fast | simplest, but the whole file is in RAM |\n")
	b.WriteString("| `bufio.Scanner` | O(line) | fast | default max token size is 64 KiB |\n")
	b.WriteString("| `bufio.Reader.ReadString` | O(line) | medium | no line length limit |\n")
	b.WriteString("| `mmap` | O(1) resident | fastest | platform specific, ~~portable~~ |\n\n")
	b.WriteString("The same in Python is shorter, because file objects are already iterators:\n\n")
	b.WriteString("```python\nimport sys\n\n\ndef count_lines(path: str) -> int:\n    \"\"\"Count non-comment lines.\"\"\"\n    n = 0\n")
	b.WriteString("    with open(path, encoding=\"utf-8\") as f:\n        for line in f:\n            if line.startswith(\"#\"):\n                continue\n            n += 1\n    return n\n\n\n")
	b.WriteString("if __name__ == \"__main__\":\n    print(f\"{count_lines(sys.argv[1])} lines\")\n```\n\n")
	b.WriteString("> **Tip:** if the file is compressed, wrap it with `gzip.NewReader` first; the scanner does not care where the bytes come from.\n\n")
	for b.Len() < 4000 {
		b.WriteString("- A note on performance: buffered reads amortise system calls, so throughput is usually bound by parsing, not I/O. ")
		b.WriteString("Profile before optimising; see www.example.com/profiling for a walkthrough.\n")
	}
	return b.String()
}

func TestSampleAnswerSize(t *testing.T) {
	if n := len(sampleAnswer()); n < 3900 || n > 4400 {
		t.Fatalf("sample answer is %d bytes, want ~4 KB", n)
	}
	if n := strings.Count(sampleAnswer(), "```"); n != 4 {
		t.Fatalf("sample answer has %d fences, want 4", n)
	}
}

func BenchmarkHTML(b *testing.B) {
	r := New()
	md := sampleAnswer()
	r.HTML(md) // warm up lexers and caches
	b.SetBytes(int64(len(md)))
	b.ReportAllocs()
	for b.Loop() {
		r.HTML(md)
	}
}

// partialSample is a 4 KB stream snapshot with the same content mix as
// sampleAnswer, cut inside its second (Python) code block, so that the
// fence-closing path (two parses) is exercised.
func partialSample() string {
	full := sampleAnswer()
	cut := full[:strings.Index(full, "if __name__")]
	var pad strings.Builder
	for pad.Len()+len(cut) < 4096 {
		pad.WriteString("Some context before the answer proper, as prose. ")
	}
	return pad.String() + "\n\n" + cut
}

func TestPartialSample(t *testing.T) {
	md := partialSample()
	if n := len(md); n < 4000 || n > 4200 {
		t.Fatalf("partial sample is %d bytes, want ~4 KB", n)
	}
	if _, ok := closeOpenFence(New().parse([]byte(md)), []byte(md)); !ok {
		t.Fatal("partial sample does not end inside a code block")
	}
}

func BenchmarkPartial(b *testing.B) {
	r := New()
	md := partialSample()
	r.Partial(md)
	b.SetBytes(int64(len(md)))
	b.ReportAllocs()
	for b.Loop() {
		r.Partial(md)
	}
}

func BenchmarkHTMLParallel(b *testing.B) {
	r := New()
	md := sampleAnswer()
	r.HTML(md)
	b.SetBytes(int64(len(md)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.HTML(md)
		}
	})
}
