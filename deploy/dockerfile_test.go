package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile checks what the image promises, since CI cannot build it:
// a static binary (CGO off) on a final stage with no shell, a non-root
// user, the data volume, and a HEALTHCHECK that runs the binary's own
// `healthcheck` command (the final stage has no curl).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	stages := regexp.MustCompile(`(?m)^FROM\s`).FindAllStringIndex(src, -1)
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d FROM lines", len(stages))
	}
	final := src[stages[len(stages)-1][0]:]
	for _, want := range []string{
		"CGO_ENABLED=0",
		"./cmd/aichat",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("Dockerfile does not contain %q", want)
		}
	}
	for _, re := range []string{
		`(?m)^FROM gcr\.io/distroless/static[^\s]*:nonroot\s*$`,
		`(?m)^USER 65532(:65532)?\s*$`,
		`(?m)^VOLUME \["/data"\]\s*$`,
		`(?m)AICHAT_DATA_DIR=/data`,
		`(?m)AICHAT_ADDR=:8080`,
		`(?m)^EXPOSE 8080\s*$`,
		`(?m)^HEALTHCHECK .*\\\n\s*CMD \["/usr/local/bin/aichat", "healthcheck"\]`,
		`(?m)^ENTRYPOINT \["/usr/local/bin/aichat"\]`,
	} {
		if !regexp.MustCompile(re).MatchString(final) {
			t.Errorf("final stage does not match %s", re)
		}
	}
	if strings.Contains(final, "USER root") || strings.Contains(final, "USER 0") {
		t.Error("final stage runs as root")
	}
}

// TestDockerignore: the build context keeps what `go build` needs (a
// pattern that drops go.mod or internal/ would break the image build,
// which CI cannot run) and drops the local data folder with its secrets.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(l, "/"), "/"))
		}
	}
	ignored := func(path string) bool {
		for _, p := range patterns {
			for dir := path; dir != "."; dir = filepath.Dir(dir) {
				if ok, _ := filepath.Match(p, dir); ok {
					return true
				}
			}
		}
		return false
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd/aichat/main.go", "internal/app/run.go",
		"internal/store/migrations", "internal/web/static", "internal/auth/common_passwords.txt"} {
		if ignored(keep) {
			t.Errorf(".dockerignore drops %s, which the build needs", keep)
		}
	}
	for _, drop := range []string{"data", ".git", "artifacts"} {
		if !ignored(drop) {
			t.Errorf(".dockerignore keeps %s in the build context", drop)
		}
	}
}
