package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff/internal/testkit"
	"github.com/skiffkv/skiff/skifftest"
)

// The test binary doubles as the skiff command: with SKIFF_TEST_AS_CMD
// set it runs main, so tests can start real skiff processes (serve,
// watch, dev) without building the command separately.
func TestMain(m *testing.M) {
	if os.Getenv("SKIFF_TEST_AS_CMD") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// result is what one run of the command gave.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// runCLI runs the command in-process.
func runCLI(t testing.TB, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := Run(ctx, args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// mustRun runs the command and fails the test unless it exits with want.
func mustRun(t testing.TB, want int, args ...string) result {
	t.Helper()
	r := runCLI(t, args...)
	if r.code != want {
		t.Fatalf("skiff %s: %v, want exit %d", strings.Join(args, " "), r, want)
	}
	return r
}

// decodeJSON decodes the one JSON object r printed.
func decodeJSON[T any](t testing.TB, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, r.stdout)
	}
	return v
}

// testCluster starts an in-memory cluster and points the command at it:
// testDialer reaches its nodes, and SKIFF_ENDPOINTS names them.
func testCluster(t *testing.T, opts *skifftest.Options) *skifftest.Cluster {
	t.Helper()
	c := skifftest.NewCluster(t, 3, opts)
	testDialer = c.Dialer()
	t.Cleanup(func() { testDialer = nil })
	t.Setenv("SKIFF_ENDPOINTS", strings.Join([]string{c.Addr(0), c.Addr(1), c.Addr(2)}, ","))
	return c
}

// withStdin makes the command read s as its standard input.
func withStdin(t *testing.T, s string) {
	old := stdin
	stdin = strings.NewReader(s)
	t.Cleanup(func() { stdin = old })
}

// syncBuffer and eventually are the shared test helpers.
type syncBuffer = testkit.SyncBuffer

var eventually = testkit.Eventually

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
