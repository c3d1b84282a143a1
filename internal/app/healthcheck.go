package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheck is `aichat healthcheck`: it GETs /healthz on the server this
// environment configures (AICHAT_ADDR, or --addr/--url) and fails unless the
// answer is 200. It exists for container images without a shell or curl
// (distroless): the Dockerfile's HEALTHCHECK runs the binary itself.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := getenv("AICHAT_ADDR")
	if addr == "" {
		addr = "localhost:8080"
	}
	fs.StringVar(&addr, "addr", addr, "the server's listen address (AICHAT_ADDR)")
	url := fs.String("url", "", "full URL to check instead of http://<addr>/healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	target := *url
	if target == "" {
		u, err := healthzURL(addr)
		if err != nil {
			return err
		}
		target = u
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", target, res.StatusCode)
	}
	fmt.Fprintf(stdout, "healthy: %s\n", target)
	return nil
}

// healthzURL turns a listen address into the URL of its /healthz as seen
// from the same host: a wildcard host (":8080", "0.0.0.0:8080", "[::]:8080")
// becomes the loopback address.
func healthzURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("healthcheck: AICHAT_ADDR=%q: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
