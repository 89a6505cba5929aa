package skiff_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/internal/testkit"
	"github.com/skiffkv/skiff/skifftest"
)

// scrape is one /metrics answer in the text format.
type scrape string

func get(t testing.TB, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func scrapeMetrics(t testing.TB, h http.Handler) testkit.Scrape {
	t.Helper()
	code, body := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", code, body)
	}
	return testkit.Scrape(body)
}

// After writes and reads, a scrape holds Raft's metrics and skiff's own
// with values that moved.
func TestMetricsMoveWithWrites(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := openNode(t, cfg)
	ctx := testCtx(t)
	h := n.MetricsHandler()
	before := scrapeMetrics(t, h)
	applies, _ := before.Value("raft_apply")
	commits, _ := before.Value("raft_commitTime_count")

	w, err := n.Watch(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const writes = 5
	var rev uint64
	for i := range writes {
		if rev, err = n.Put(ctx, fmt.Sprintf("m/%d", i), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Create(ctx, "m/0", []byte("again")); !errors.Is(err, skiff.ErrExists) {
		t.Fatalf("Create(m/0) = %v, want ErrExists", err)
	}
	if _, err := n.Get(ctx, "m/0"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Get(ctx, "m/none"); !errors.Is(err, skiff.ErrNotFound) {
		t.Fatalf("Get(m/none) = %v, want ErrNotFound", err)
	}
	if _, err := n.List(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	s := scrapeMetrics(t, h)
	id := n.ID()
	checks := []struct {
		name   string
		labels []string
		ok     func(float64) bool
		want   string
	}{
		{"raft_apply", nil, func(v float64) bool { return v >= applies+writes+1 }, fmt.Sprintf(">= %v", applies+writes+1)},
		{"raft_commitTime_count", nil, func(v float64) bool { return v > commits }, fmt.Sprintf("> %v", commits)},
		{"skiff_writes_total", []string{"node", id, "kind", "put", "outcome", "ok"}, eq(writes), "5"},
		{"skiff_writes_total", []string{"kind", "create", "outcome", "exists"}, eq(1), "1"},
		{"skiff_reads_total", []string{"kind", "get", "outcome", "ok"}, eq(1), "1"},
		{"skiff_reads_total", []string{"kind", "get", "outcome", "not_found"}, eq(1), "1"},
		{"skiff_reads_total", []string{"kind", "list", "outcome", "ok"}, eq(1), "1"},
		{"skiff_apply_duration_seconds_count", nil, eq(writes + 1), "6"},
		{"skiff_read_index_duration_seconds_count", nil, func(v float64) bool { return v >= 3 }, ">= 3"},
		{"skiff_snapshot_duration_seconds_count", nil, eq(1), "1"},
		{"skiff_snapshot_size_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"skiff_node_state", []string{"state", "leader"}, eq(1), "1"},
		{"skiff_node_state", []string{"state", "follower"}, eq(0), "0"},
		{"skiff_ready", nil, eq(1), "1"},
		{"skiff_applied_index", nil, func(v float64) bool { return v >= float64(rev) }, fmt.Sprintf(">= %d", rev)},
		{"skiff_commit_index", nil, func(v float64) bool { return v >= float64(rev) }, fmt.Sprintf(">= %d", rev)},
		{"skiff_state_keys", nil, eq(writes), "5"},
		{"skiff_state_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"skiff_state_quota_bytes", nil, eq(skiff.DefaultQuotaBytes), "the default quota"},
		{"skiff_log_store_info", []string{"kind", "wal"}, eq(1), "1"}, // the default
		{"skiff_watches", []string{"origin", "local"}, eq(1), "1"},
		{"skiff_watch_history_newest_revision", nil, func(v float64) bool { return v >= float64(rev) }, fmt.Sprintf(">= %d", rev)},
		{"skiff_watch_history_changes", nil, eq(writes), "5"},
		{"go_goroutines", nil, func(v float64) bool { return v > 0 }, "> 0"},
	}
	for _, c := range checks {
		if v := s.Must(t, c.name, c.labels...); !c.ok(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.want)
		}
	}
	// The watcher took nothing, so it lags by what was written since it
	// started.
	if v := s.Must(t, "skiff_watch_lag_revisions"); v < 1 {
		t.Errorf("skiff_watch_lag_revisions = %v with an unread watch, want >= 1", v)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

// A write through a follower is counted as forwarded there, and every
// node's collector can share one registry (each series carries its node).
func TestMetricsForwardedAndSharedRegistry(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	f := c.Follower()
	h := f.MetricsHandler()
	if _, err := f.Put(ctx, "fw/k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Get(ctx, "fw/k"); err != nil {
		t.Fatal(err)
	}
	s := scrapeMetrics(t, h)
	for _, kind := range []string{"write", "read_index"} {
		if v := s.Must(t, "skiff_forwarded_total", "node", f.ID(), "kind", kind, "outcome", "ok"); v < 1 {
			t.Errorf("skiff_forwarded_total{kind=%q} on the follower = %v, want >= 1", kind, v)
		}
	}
	if v := s.Must(t, "skiff_node_state", "state", "follower"); v != 1 {
		t.Errorf("skiff_node_state{state=follower} = %v, want 1", v)
	}

	mux := http.NewServeMux()
	reg := newRegistry(t, c.Node(0).Collector(), c.Node(1).Collector(), c.Node(2).Collector(), skiff.RaftCollector())
	mux.Handle("/metrics", reg)
	all := scrapeMetrics(t, mux)
	for i := range 3 {
		all.Must(t, "skiff_applied_index", "node", c.Node(i).ID())
	}
}

// newRegistry registers cs on a registry of the test's own, the way an
// embedding program would, and serves it.
func newRegistry(t testing.TB, cs ...prometheus.Collector) http.Handler {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	eventually(t, d, func() error {
		if !cond() {
			return errors.New(what)
		}
		return nil
	})
}
