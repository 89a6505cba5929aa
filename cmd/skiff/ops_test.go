package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff/internal/testkit"
)

// httpGet fetches url and returns its status code and body.
func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	code, body, err := tryGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

func tryGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func scrapeMetrics(t testing.TB, addr string) testkit.Scrape {
	t.Helper()
	code, body := httpGet(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", code, body)
	}
	return testkit.Scrape(body)
}

// serve in-process: a one-node cluster that answers the client verbs,
// serves its metrics, health, readiness and (with --pprof) profiles on
// --metrics-addr, and stops cleanly.
func TestServeInProcess(t *testing.T) {
	addr, ops := freeAddr(t), freeAddr(t)
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"serve", "--dir", t.TempDir(), "--id", "solo", "--bind-addr", addr,
			"--metrics-addr", ops, "--pprof", "--log-format", "json", "--log-level", "debug"}, io.Discard, &logs)
	}()
	t.Setenv("SKIFF_ENDPOINTS", addr)
	waitReady(t, ops) // once it leads
	if code, body := httpGet(t, "http://"+ops+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, body := httpGet(t, "http://"+ops+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("/debug/pprof/goroutine with --pprof = %d %q", code, body)
	}

	before := scrapeMetrics(t, ops)
	const writes = 3
	for i := range writes {
		mustRun(t, exitOK, "put", fmt.Sprintf("k/%d", i), "v")
	}
	if r := mustRun(t, exitOK, "get", "k/0"); r.stdout != "v\n" {
		t.Fatalf("get printed %q", r.stdout)
	}
	checkMetricsMoved(t, before, scrapeMetrics(t, ops), "solo", writes)

	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("serve exited %d:\n%s", code, logs.String())
	}
	for _, want := range []string{`"msg":"serving"`, `"msg":"stopped"`, "no other voter"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("serve's JSON logs lack %q:\n%s", want, logs.String())
		}
	}
	mustRun(t, exitUsage, "serve", "--dir", t.TempDir(), "--bind-addr", freeAddr(t), "--pprof")
	mustRun(t, exitUsage, "serve", "--dir", t.TempDir(), "--bind-addr", freeAddr(t), "--metrics-addr", "nowhere")
}

// checkMetricsMoved checks a scrape of a one-node cluster taken after
// writes puts and a get against one taken before them: Raft's and skiff's
// counters moved, and the gauges say the node leads.
func checkMetricsMoved(t *testing.T, before, after testkit.Scrape, node string, writes int) {
	t.Helper()
	for _, c := range []struct {
		name   string
		labels []string
		least  float64 // the increase at least
	}{
		{"skiff_writes_total", []string{"node", node, "kind", "put", "outcome", "ok"}, float64(writes)},
		{"skiff_reads_total", []string{"node", node, "kind", "get", "outcome", "ok"}, 1},
		{"skiff_apply_duration_seconds_count", []string{"node", node}, float64(writes)},
		{"skiff_applied_index", []string{"node", node}, float64(writes)},
		{"skiff_state_keys", []string{"node", node}, float64(writes)},
		{"raft_apply", nil, float64(writes)},
		{"raft_commitTime_count", nil, float64(writes)},
	} {
		b, _ := before.Value(c.name, c.labels...) // absent before: none yet
		if a := after.Must(t, c.name, c.labels...); a-b < c.least {
			t.Errorf("%s%q went from %v to %v over %d writes, want an increase of at least %v", c.name, c.labels, b, a, writes, c.least)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"skiff_ready", []string{"node", node}, 1},
		{"skiff_node_state", []string{"node", node, "state", "leader"}, 1},
		{"skiff_log_store_info", []string{"node", node, "kind", "wal"}, 1}, // the default
		{"raft_state_leader", nil, 1},                                      // counted from before the node opened
	} {
		if v := after.Must(t, c.name, c.labels...); v != c.want {
			t.Errorf("%s%q = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}

// waitReady waits until the node whose --metrics-addr is ops answers
// /readyz with 200.
func waitReady(t *testing.T, ops string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		code, body, err := tryGet("http://" + ops + "/readyz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("/readyz = %d %q", code, body)
		}
		return err
	})
}

// Before its node is open, --metrics-addr says the process is alive but
// not ready, and serves no metrics.
func TestOpsWhileStarting(t *testing.T) {
	o := &opsServer{}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": http.StatusServiceUnavailable, "/metrics": http.StatusServiceUnavailable} {
		rec := httptest.NewRecorder()
		o.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want || !strings.Contains(rec.Body.String(), "starting") {
			t.Errorf("GET %s while starting = %d %q, want %d saying the node is starting", path, rec.Code, rec.Body.String(), want)
		}
	}
}
