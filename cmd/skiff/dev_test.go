package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dev prints how to talk to its cluster, and the command it prints works.
func TestDev(t *testing.T) {
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- Run(ctx, []string{"dev", "--port", "0"}, &out, &errb) }()
	var example string
	eventually(t, 30*time.Second, func() error {
		m := regexp.MustCompile(`go run ./cmd/skiff (--endpoints \S+) put greeting hello`).FindStringSubmatch(out.String())
		if m == nil {
			return errNotYet(out.String() + errb.String())
		}
		example = m[1]
		return nil
	})
	for _, want := range []string{"export SKIFF_ENDPOINTS=127.0.0.1:", "skiff put greeting hello", "skiff.Dial(ctx, []string{\"127.0.0.1:", "removed on exit", "go install github.com/skiffkv/skiff/cmd/skiff@latest"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dev did not print %q:\n%s", want, out.String())
		}
	}
	eps := strings.TrimPrefix(example, "--endpoints ")
	mustRun(t, exitOK, "--endpoints", eps, "put", "greeting", "hello")
	if r := mustRun(t, exitOK, "--endpoints", eps, "get", "greeting"); r.stdout != "hello\n" {
		t.Fatalf("get from the dev cluster printed %q", r.stdout)
	}
	// Every skiff command printed for another terminal runs as printed,
	// with the endpoints it exports (a watch runs until interrupted:
	// here, until its first event).
	exported := regexp.MustCompile(`export SKIFF_ENDPOINTS=(\S+)`).FindStringSubmatch(out.String())
	if exported == nil || exported[1] != eps {
		t.Fatalf("dev exports %q, want the endpoints %q", exported, eps)
	}
	t.Setenv("SKIFF_ENDPOINTS", exported[1])
	commands := regexp.MustCompile(`(?m)^  skiff ([^#\n]+?)\s*(#.*)?$`).FindAllStringSubmatch(out.String(), -1)
	if len(commands) < 5 {
		t.Fatalf("dev printed %d skiff commands:\n%s", len(commands), out.String())
	}
	for _, c := range commands {
		args := strings.Fields(c[1])
		if args[0] == "watch" {
			args = append(args, "--initial", "--count", "1")
		}
		mustRun(t, exitOK, args...)
	}
	if ms := decodeJSON[membersJSON](t, mustRun(t, exitOK, "--endpoints", eps, "members", "--json")); len(ms.Members) != 3 {
		t.Fatalf("the dev cluster has %d members", len(ms.Members))
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("dev exited %d: %s", code, errb.String())
	}
	mustRun(t, exitUsage, "dev", "extra")
	mustRun(t, exitUsage, "dev", "--port", "70000")
}

// The command as a process: dev with --json and --dir prints its
// endpoints, stops on SIGINT with exit 0, and leaves its data for
// inspect.
func TestDevProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process; skipped with -short")
	}
	dir := t.TempDir()
	p := startProc(t, nil, "dev", "--port", "0", "--json", "--dir", dir)
	var dev struct {
		Endpoints []string `json:"endpoints"`
		Dir       string   `json:"dir"`
	}
	eventually(t, 30*time.Second, func() error {
		line, _, ok := strings.Cut(p.out.String(), "\n")
		if !ok {
			return errNotYet(p.out.String())
		}
		return jsonUnmarshal(line, &dev)
	})
	if len(dev.Endpoints) != 3 || dev.Dir != dir {
		t.Fatalf("dev --json printed %+v", dev)
	}
	mustRun(t, exitOK, "--endpoints", strings.Join(dev.Endpoints, ","), "put", "kept", "yes")
	if code := p.stop(t, os.Interrupt); code != exitOK {
		t.Fatalf("dev exited %d after SIGINT:\n%s", code, p.out.String())
	}
	r := mustRun(t, exitOK, "inspect", dir+"/dev-1", "--json")
	if d := decodeJSON[dirJSON](t, r); d.NodeID != "dev-1" || d.Log == nil || d.Log.Commands < 1 {
		t.Fatalf("inspect of a dev node's dir = %+v", d)
	}
}
