package deploy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// No container engine or cluster runs in CI, so these tests read the
// compose, stack and Kubernetes files and check what they promise. .ci/run
// also feeds compose and stack files to `docker-compose config` and
// `docker stack config` (schema checks) where those clients exist.

type obj = map[string]any

func loadYAML(t *testing.T, path string) []obj {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []obj
	dec := yaml.NewDecoder(f)
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

// at walks keys (and list indexes) from v; nil when a step is missing.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func num(t *testing.T, v any, what string) int {
	t.Helper()
	n, err := strconv.Atoi(str(v))
	if err != nil {
		t.Fatalf("%s = %v: want a number", what, v)
	}
	return n
}

func want(t *testing.T, file string, got any, wantValue string, path ...any) {
	t.Helper()
	if s := str(got); s != wantValue {
		t.Errorf("%s: %v = %q, want %q", file, path, s, wantValue)
	}
}

// checkHealthcheck: a service has a healthcheck whose test contains needle.
func checkHealthcheck(t *testing.T, file, svc string, services obj, needle string) {
	t.Helper()
	test := str(at(services, svc, "healthcheck", "test"))
	if !strings.Contains(test, needle) {
		t.Errorf("%s: service %s healthcheck test %q does not contain %q", file, svc, test, needle)
	}
}

// checkEnvFiles: every env_file a service names has a committed .example
// whose keys are all CHANGE_ME-free or documented settings.
func checkEnvFiles(t *testing.T, file string, services obj) {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range services {
		files, _ := at(s, "env_file").([]any)
		for _, f := range files {
			ex := str(f) + ".example"
			b, err := os.ReadFile(ex)
			if err != nil {
				t.Errorf("%s: service %s reads env_file %s, but %s is not committed", file, name, f, ex)
				continue
			}
			sc := bufio.NewScanner(strings.NewReader(string(b)))
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				key, _, ok := strings.Cut(line, "=")
				if !ok {
					t.Errorf("%s: %q is not KEY=value", ex, line)
					continue
				}
				if strings.HasPrefix(key, "AICHAT_") || strings.HasPrefix(key, "OPENAI_") {
					if !strings.Contains(string(readme), "`"+key+"`") {
						t.Errorf("%s: %s is not a setting the README documents", ex, key)
					}
				}
			}
		}
	}
}

func TestComposeFile(t *testing.T) {
	const file = "docker-compose.yml"
	services, _ := at(loadYAML(t, file)[0], "services").(obj)
	for _, s := range []string{"aichat", "postgres", "redis"} {
		if services[s] == nil {
			t.Fatalf("%s: no service %s", file, s)
		}
	}
	checkHealthcheck(t, file, "aichat", services, "healthcheck")
	checkHealthcheck(t, file, "postgres", services, "pg_isready")
	checkHealthcheck(t, file, "redis", services, "ping")
	for _, dep := range []string{"postgres", "redis"} {
		want(t, file, at(services, "aichat", "depends_on", dep, "condition"), "service_healthy", "aichat", "depends_on", dep, "condition")
	}
	want(t, file, at(services, "aichat", "build", "context"), "..", "aichat", "build", "context")
	want(t, file, at(services, "aichat", "volumes", 0), "aichat-data:/data", "aichat", "volumes", 0)
	want(t, file, at(services, "aichat", "environment", "AICHAT_REDIS_URL"), "redis://redis:6379/0", "aichat", "environment", "AICHAT_REDIS_URL")
	checkEnvFiles(t, file, services)
}

func TestStackFile(t *testing.T) {
	const file = "stack.yml"
	doc := loadYAML(t, file)[0]
	services, _ := at(doc, "services").(obj)
	for _, s := range []string{"aichat", "postgres", "redis", "nginx", "certbot"} {
		if services[s] == nil {
			t.Fatalf("%s: no service %s", file, s)
		}
	}
	// The app: 2+ replicas, start-first rolling updates that roll back.
	if n := num(t, at(services, "aichat", "deploy", "replicas"), "aichat replicas"); n < 2 {
		t.Errorf("%s: aichat runs %d replicas, want 2 or more", file, n)
	}
	up := []any{"aichat", "deploy", "update_config"}
	want(t, file, at(services, append(up, "order")...), "start-first", append(up, "order")...)
	want(t, file, at(services, append(up, "failure_action")...), "rollback", append(up, "failure_action")...)
	if at(services, append(up, "monitor")...) == nil {
		t.Errorf("%s: aichat update_config has no monitor window: a task that fails its healthcheck after the update would not roll it back", file)
	}
	want(t, file, at(services, "aichat", "deploy", "rollback_config", "order"), "start-first", "aichat", "deploy", "rollback_config", "order")
	checkHealthcheck(t, file, "aichat", services, "healthcheck")
	checkHealthcheck(t, file, "postgres", services, "pg_isready")
	checkHealthcheck(t, file, "redis", services, "ping")
	checkHealthcheck(t, file, "nginx", services, "/nginx-health")
	// Several instances need Redis and one set of keys.
	want(t, file, at(services, "aichat", "environment", "AICHAT_REDIS_URL"), "redis://redis:6379/0", "aichat", "environment", "AICHAT_REDIS_URL")
	ex, err := os.ReadFile("aichat.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AICHAT_JWT_KEYS=", "AICHAT_ENCRYPTION_KEYS=", "AICHAT_INDEX_KEYS=", "AICHAT_DATABASE_URL=postgres://"} {
		if !strings.Contains(string(ex), "\n"+k) {
			t.Errorf("aichat.env.example does not set %s (replicas must share it)", k)
		}
	}
	checkEnvFiles(t, file, services)

	// nginx: deploy/nginx's template, pointed at the app's port, on 80
	// and 443, sharing the certificate volumes with certbot.
	var tmpl obj
	for _, c := range at(services, "nginx", "configs").([]any) {
		if str(at(c, "target")) == "/etc/nginx/templates/aichat.conf.template" {
			tmpl = c.(obj)
		}
	}
	if tmpl == nil {
		t.Fatalf("%s: nginx does not mount a config at /etc/nginx/templates/aichat.conf.template", file)
	}
	src := str(tmpl["source"])
	cfile := str(at(doc, "configs", src, "file"))
	if filepath.Clean(cfile) != filepath.Clean(nginxTemplate) {
		t.Errorf("%s: config %s is %q, want %s", file, src, cfile, nginxTemplate)
	}
	addr := str(at(services, "aichat", "environment", "AICHAT_ADDR"))
	want(t, file, at(services, "nginx", "environment", "AICHAT_UPSTREAM"), "aichat"+addr, "nginx", "environment", "AICHAT_UPSTREAM")
	if d := str(at(services, "nginx", "environment", "AICHAT_DOMAIN")); !strings.HasPrefix(d, "${AICHAT_DOMAIN") {
		t.Errorf("%s: nginx AICHAT_DOMAIN = %q, want it from the deployer's ${AICHAT_DOMAIN}", file, d)
	}
	published := map[string]bool{}
	for _, p := range at(services, "nginx", "ports").([]any) {
		published[str(at(p, "published"))+"->"+str(at(p, "target"))] = true
	}
	if !published["80->80"] || !published["443->443"] {
		t.Errorf("%s: nginx publishes %v, want 80->80 and 443->443", file, published)
	}
	mounts := func(svc string) map[string]string {
		m := map[string]string{}
		for _, v := range at(services, svc, "volumes").([]any) {
			parts := strings.Split(str(v), ":")
			m[parts[1]] = parts[0]
		}
		return m
	}
	nm, cm := mounts("nginx"), mounts("certbot")
	for _, dir := range []string{"/etc/letsencrypt", "/var/www/certbot"} {
		if nm[dir] == "" || nm[dir] != cm[dir] {
			t.Errorf("%s: nginx and certbot do not share a volume at %s (nginx %q, certbot %q)", file, dir, nm[dir], cm[dir])
		}
	}
	if c := str(at(services, "certbot", "entrypoint")); !strings.Contains(c, "certbot renew") || !strings.Contains(c, "--webroot -w /var/www/certbot") {
		t.Errorf("%s: certbot does not renew through the webroot: %s", file, c)
	}
	if c := str(at(services, "nginx", "command")); !strings.Contains(c, "nginx -s reload") {
		t.Errorf("%s: nginx never reloads, so renewed certificates are not picked up: %s", file, c)
	}
	// nginx and certbot share node-local volumes: same node.
	want(t, file, at(services, "nginx", "deploy", "placement", "constraints", 0), str(at(services, "certbot", "deploy", "placement", "constraints", 0)), "nginx", "deploy", "placement", "constraints", 0)
}

// TestNginxTemplate checks the directives the proxy needs, independently
// of the nginx run in TestNginxProxiesAichat (skipped without nginx).
func TestNginxTemplate(t *testing.T) {
	b, err := os.ReadFile(nginxTemplate)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	loc := regexp.MustCompile(`(?s)location = /ws \{(.*?)\n    \}`).FindStringSubmatch(conf)
	if loc == nil {
		t.Fatalf("%s: no location = /ws block", nginxTemplate)
	}
	ws := loc[1]
	for _, d := range []string{
		"proxy_http_version 1.1;",
		"proxy_set_header Upgrade $http_upgrade;",
		"proxy_set_header Connection $connection_upgrade;",
		"proxy_set_header Host $http_host;",
	} {
		if !strings.Contains(ws, d) {
			t.Errorf("%s: /ws lacks %q", nginxTemplate, d)
		}
	}
	m := regexp.MustCompile(`proxy_read_timeout (\d+)s;`).FindStringSubmatch(ws)
	if m == nil {
		t.Errorf("%s: /ws has no proxy_read_timeout in seconds", nginxTemplate)
	} else if n, _ := strconv.Atoi(m[1]); n < 3600 {
		t.Errorf("%s: /ws proxy_read_timeout %ds, want an hour or more", nginxTemplate, n)
	}
	for _, d := range []string{
		"return 301 https://$host$request_uri;",
		`add_header Strict-Transport-Security "max-age=`,
		"location /.well-known/acme-challenge/",
		"ssl_certificate     /etc/letsencrypt/live/${AICHAT_DOMAIN}/fullchain.pem;",
	} {
		if !strings.Contains(conf, d) {
			t.Errorf("%s lacks %q", nginxTemplate, d)
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	kust := loadYAML(t, "k8s/kustomization.yaml")[0]
	byKind := map[string]obj{}
	for _, r := range at(kust, "resources").([]any) {
		path := filepath.Join("k8s", str(r))
		for _, d := range loadYAML(t, path) {
			kind := str(d["kind"])
			if kind == "" || d["apiVersion"] == nil || at(d, "metadata", "name") == nil {
				t.Errorf("%s: a document without kind, apiVersion or metadata.name", path)
			}
			byKind[kind] = d
		}
	}
	for _, k := range []string{"Namespace", "Deployment", "Service", "Ingress", "HorizontalPodAutoscaler"} {
		if byKind[k] == nil {
			t.Fatalf("k8s/kustomization.yaml: no %s among its resources", k)
		}
	}
	dep, svc, ing, hpa := byKind["Deployment"], byKind["Service"], byKind["Ingress"], byKind["HorizontalPodAutoscaler"]
	const f = "k8s"
	if n := num(t, at(dep, "spec", "replicas"), "Deployment replicas"); n < 2 {
		t.Errorf("Deployment runs %d replicas, want 2 or more", n)
	}
	want(t, f, at(dep, "spec", "strategy", "rollingUpdate", "maxUnavailable"), "0", "Deployment", "maxUnavailable")
	// Labels: the selector picks the pods, the Service picks them too.
	sel := at(dep, "spec", "selector", "matchLabels").(obj)
	for k, v := range sel {
		want(t, f, at(dep, "spec", "template", "metadata", "labels", k), str(v), "pod label", k)
		want(t, f, at(svc, "spec", "selector", k), str(v), "Service selector", k)
	}
	c := at(dep, "spec", "template", "spec", "containers", 0)
	want(t, f, at(c, "livenessProbe", "httpGet", "path"), "/healthz", "livenessProbe")
	want(t, f, at(c, "readinessProbe", "httpGet", "path"), "/readyz", "readinessProbe")
	want(t, f, at(c, "ports", 0, "containerPort"), "8080", "containerPort")
	if at(c, "resources", "requests", "cpu") == nil {
		t.Error("Deployment: no CPU request, so the HPA cannot compute utilization")
	}
	want(t, f, at(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot"), "true", "runAsNonRoot")
	// The scrape annotation names the metrics listener, which the Service
	// does not expose.
	var metricsAddr string
	for _, e := range at(c, "env").([]any) {
		if str(at(e, "name")) == "AICHAT_METRICS_ADDR" {
			metricsAddr = str(at(e, "value"))
		}
	}
	want(t, f, ":"+str(at(dep, "spec", "template", "metadata", "annotations", "prometheus.io/port")), metricsAddr, "prometheus.io/port")
	for _, p := range at(svc, "spec", "ports").([]any) {
		if ":"+str(at(p, "port")) == metricsAddr || str(at(p, "targetPort")) == "metrics" {
			t.Errorf("Service exposes the metrics port: %v", p)
		}
	}
	want(t, f, at(c, "envFrom", 0, "secretRef", "name"), str(at(loadYAML(t, "k8s/secret.example.yaml")[0], "metadata", "name")), "envFrom secret")
	// Ingress -> Service -> container port, by name.
	want(t, f, at(ing, "spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"), str(at(svc, "metadata", "name")), "Ingress backend")
	want(t, f, at(ing, "spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "name"), str(at(svc, "spec", "ports", 0, "name")), "Ingress backend port")
	want(t, f, at(svc, "spec", "ports", 0, "targetPort"), str(at(c, "ports", 0, "name")), "Service targetPort")
	for _, a := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		v := at(ing, "metadata", "annotations", "nginx.ingress.kubernetes.io/"+a)
		if n := num(t, v, a); n < 3600 {
			t.Errorf("Ingress %s %d s: WebSockets need an hour or more", a, n)
		}
	}
	if at(ing, "spec", "tls", 0, "secretName") == nil {
		t.Error("Ingress without TLS")
	}
	// HPA on the Deployment's CPU, never below 2.
	want(t, f, at(hpa, "spec", "scaleTargetRef", "name"), str(at(dep, "metadata", "name")), "HPA target")
	want(t, f, at(hpa, "spec", "metrics", 0, "resource", "name"), "cpu", "HPA metric")
	if n := num(t, at(hpa, "spec", "minReplicas"), "HPA minReplicas"); n < 2 {
		t.Errorf("HPA minReplicas %d, want 2 or more", n)
	}
}

// TestStackFilesReferToFiles: every config file a stack mounts exists, and
// the monitoring stack joins the app stack's network.
func TestStackFilesReferToFiles(t *testing.T) {
	for _, file := range []string{"stack.yml", "monitoring.yml", "portainer.yml"} {
		doc := loadYAML(t, file)[0]
		configs, _ := at(doc, "configs").(obj)
		for name, c := range configs {
			f := str(at(c, "file"))
			if _, err := os.Stat(f); err != nil {
				t.Errorf("%s: config %s reads %s: %v", file, name, f, err)
			}
		}
	}
	// docker stack deploy -c stack.yml aichat names its network aichat_aichat.
	if _, ok := at(loadYAML(t, "stack.yml")[0], "networks", "aichat").(obj); !ok {
		t.Fatal("stack.yml: no network aichat")
	}
	mon := loadYAML(t, "monitoring.yml")[0]
	want(t, "monitoring.yml", at(mon, "networks", "aichat", "name"), "aichat_aichat", "networks", "aichat", "name")
	want(t, "monitoring.yml", at(mon, "networks", "aichat", "external"), "true", "networks", "aichat", "external")
	// Prometheus scrapes every task of the app stack's service: /metrics on
	// its metrics listener, /readyz on the main one.
	env := at(loadYAML(t, "stack.yml")[0], "services", "aichat", "environment")
	port := func(v string) string { return v[strings.LastIndex(v, ":")+1:] }
	wantPort := map[string]string{
		"aichat":        port(str(at(env, "AICHAT_METRICS_ADDR"))),
		"aichat-readyz": port(str(at(env, "AICHAT_ADDR"))),
	}
	if wantPort["aichat"] == "" || wantPort["aichat"] == wantPort["aichat-readyz"] {
		t.Errorf("stack.yml: aichat has no AICHAT_METRICS_ADDR of its own (/metrics would be on the proxied listener)")
	}
	found := 0
	for _, job := range at(loadYAML(t, "prometheus/prometheus.yml")[0], "scrape_configs").([]any) {
		name := str(at(job, "job_name"))
		if p, ok := wantPort[name]; ok {
			found++
			want(t, "prometheus/prometheus.yml", at(job, "dns_sd_configs", 0, "names", 0), "tasks.aichat", name, "names")
			want(t, "prometheus/prometheus.yml", at(job, "dns_sd_configs", 0, "port"), p, name, "port")
		}
	}
	if found != len(wantPort) {
		t.Errorf("prometheus/prometheus.yml: %d of the jobs %v", found, wantPort)
	}
}
