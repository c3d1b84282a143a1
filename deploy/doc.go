// Package deploy holds the deployment files (Docker Compose, Swarm stack,
// Kubernetes manifests, nginx, Prometheus, Grafana) and no code: its tests
// check those files, since no container engine runs in CI.
package deploy
