package skiff

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/skiffkv/skiff/internal/command"
)

// A node keeps no metrics until they are asked for (Collector,
// MetricsHandler): until then every hook on the request paths is one
// atomic load of a nil pointer, no clock is read and no histogram is
// touched. Counters therefore count from that first call, which
// Prometheus treats as any counter's start. Gauges are read from the
// node's state when scraped, so they cost nothing between scrapes.

// observability is a Node's metrics state.
type observability struct {
	once        sync.Once
	met         atomic.Pointer[nodeMetrics]
	handlerOnce sync.Once
	handler     http.Handler
}

// Collector returns a prometheus.Collector of this node's own metrics,
// the skiff_* series of README's Metrics table, each labelled with the
// node's ID (node), so several nodes' collectors can share a registry:
//
//	reg.MustRegister(node.Collector(), skiff.RaftCollector())
//
// Raft's metrics are process-wide and come from RaftCollector, once per
// registry; MetricsHandler serves both. Before the first call of
// Collector or MetricsHandler the node keeps no metrics; counters and
// histograms count from then. Every call returns the same collector,
// which is safe for concurrent use and goes on reporting (the node's
// state as "shutdown") after Close.
func (n *Node) Collector() prometheus.Collector {
	n.obs.once.Do(func() { n.obs.met.Store(newNodeMetrics(n)) })
	return n.obs.met.Load()
}

// MetricsHandler returns an http.Handler that serves, in Prometheus'
// exposition formats, this node's metrics (Collector), hashicorp/raft's
// (RaftCollector) and the Go runtime's and process's. It is what
// HTTPHandler serves at /metrics; a program with a registry of its own
// registers Collector and RaftCollector there instead. The first call
// starts the node's metrics and installs Raft's sink (see RaftCollector);
// every call returns the same handler.
func (n *Node) MetricsHandler() http.Handler {
	n.obs.handlerOnce.Do(func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			RaftCollector(),
			n.Collector(),
		)
		// ContinueOnError: a metric that cannot be gathered must not
		// hide all the others.
		n.obs.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
			ErrorLog:      promLogger{n},
		})
	})
	return n.obs.handler
}

type promLogger struct{ n *Node }

func (l promLogger) Println(v ...any) {
	l.n.log.Warn("metrics: gathering failed", "err", fmt.Sprint(v...))
}

// meter returns the node's metrics, or nil before they were asked for.
// Every method of *nodeMetrics does nothing on nil.
func (n *Node) meter() *nodeMetrics { return n.obs.met.Load() }

// nodeMetrics holds what the request paths update; everything else is
// read from the node when scraped (collectState).
type nodeMetrics struct {
	n      *Node
	labels prometheus.Labels // node=<ID>

	writes, reads, forwarded *prometheus.CounterVec
	applyDur, readIndexDur   prometheus.Histogram
	snapshotDur              prometheus.Histogram
	watchLagged              prometheus.Counter

	state map[string]*prometheus.Desc
}

var _ prometheus.Collector = (*nodeMetrics)(nil)

// latencyBuckets span what an in-process read index takes (tens of
// microseconds) to a write through a slow disk (seconds).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{n: n, labels: prometheus.Labels{"node": n.id}}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: m.labels}, labels)
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: m.labels, Buckets: buckets})
	}
	m.writes = counter("skiff_writes_total", "Writes this node was asked for, by its program or its network clients, by kind and outcome (ok, or the error's reason). Writes another node forwarded here are counted there.", "kind", "outcome")
	m.reads = counter("skiff_reads_total", "Reads this node served, by kind and outcome (ok, or the error's reason); a network listing counts each page.", "kind", "outcome")
	m.forwarded = counter("skiff_forwarded_total", "Calls this node forwarded to the leader (write, read_index, membership), by outcome.", "kind", "outcome")
	m.applyDur = histogram("skiff_apply_duration_seconds", "Seconds from proposing a write to this node's Raft, as leader, until it was committed and applied.", latencyBuckets)
	m.readIndexDur = histogram("skiff_read_index_duration_seconds", "Seconds a linearizable read spent getting a read index from the leader and waiting until this node had applied it.", latencyBuckets)
	m.snapshotDur = histogram("skiff_snapshot_duration_seconds", "Seconds to take a snapshot and truncate the log behind it.", prometheus.ExponentialBuckets(.001, 4, 10))
	m.watchLagged = prometheus.NewCounter(prometheus.CounterOpts{Name: "skiff_watch_lagged_total", ConstLabels: m.labels,
		Help: "Watches ended because they fell behind the whole watch history (ErrWatchLagged)."})
	m.state = map[string]*prometheus.Desc{}
	for _, g := range stateGauges {
		m.state[g.name] = prometheus.NewDesc(g.name, g.help, g.labels, m.labels)
	}
	return m
}

func (m *nodeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
	for _, d := range m.state {
		ch <- d
	}
}

func (m *nodeMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
	m.collectState(ch)
}

func (m *nodeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.writes, m.reads, m.forwarded, m.applyDur, m.readIndexDur, m.snapshotDur, m.watchLagged}
}

// start returns the time now, or nothing when metrics are off: the clock
// is read only for a histogram that will take it.
func (m *nodeMetrics) start() time.Time {
	if m == nil {
		return time.Time{}
	}
	return time.Now()
}

// The hooks below are called on the request paths. Each checks for nil
// and calls out for the work, so that the check alone is inlined where
// metrics are off.

func (m *nodeMetrics) write(op *command.Op, err error) {
	if m != nil {
		m.countWrite(op, err)
	}
}

func (m *nodeMetrics) countWrite(op *command.Op, err error) { m.count(m.writes, writeKind(op), err) }

// Read kinds, the values of skiff_reads_total's kind label.
const (
	readGet      = "get"
	readList     = "list"
	readChildren = "children"
	readPrefixes = "prefixes"
)

// read counts a read; errp points at the caller's named error, so that a
// deferred call sees the final one.
func (m *nodeMetrics) read(kind string, errp *error) {
	if m != nil {
		m.count(m.reads, kind, *errp)
	}
}

func (m *nodeMetrics) forward(kind string, errp *error) {
	if m != nil {
		m.count(m.forwarded, kind, *errp)
	}
}

func (m *nodeMetrics) count(c *prometheus.CounterVec, kind string, err error) {
	c.WithLabelValues(kind, outcome(err)).Inc()
}

func (m *nodeMetrics) applied(start time.Time) {
	if m != nil {
		observeSince(m.applyDur, start)
	}
}

func (m *nodeMetrics) readIndexed(start time.Time) {
	if m != nil {
		observeSince(m.readIndexDur, start)
	}
}

func (m *nodeMetrics) snapshotTaken(start time.Time) {
	if m != nil {
		observeSince(m.snapshotDur, start)
	}
}

func observeSince(h prometheus.Histogram, start time.Time) { h.Observe(time.Since(start).Seconds()) }

func (m *nodeMetrics) lagged() {
	if m != nil {
		m.watchLagged.Inc()
	}
}

func writeKind(op *command.Op) string {
	switch {
	case op.Kind == command.Put && op.Cond == command.Absent:
		return "create"
	case op.Kind == command.Put && op.Cond == command.ModRevision:
		return "compare_and_swap"
	case op.Kind == command.Put:
		return "put"
	case op.Cond == command.ModRevision:
		return "delete_if"
	}
	return "delete"
}

// outcome names how a call ended: "ok", or the wire reason of the first
// sentinel the error wraps (errors.go's table, lower-cased: not_found,
// no_leader, indeterminate, ...), so a metric's outcomes and the errors a
// client sees use the same words.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if ws := sentinelsOf(err); len(ws) > 0 {
		return strings.ToLower(ws[0].reason)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

// stateGauges are the metrics read from the node's state when scraped.
var stateGauges = []struct {
	name, help string
	labels     []string
}{
	{"skiff_node_state", "1 for the node's Raft state (leader, follower, candidate, shutdown), 0 for the others.", []string{"state"}},
	{"skiff_leader_known", "1 while the node knows a leader.", nil},
	{"skiff_ready", "1 while the node is ready (/readyz, gRPC health SERVING): it knows a leader and has applied close to the commit index.", nil},
	{"skiff_term", "The node's current Raft term.", nil},
	{"skiff_commit_index", "The highest log index the node knows to be committed.", nil},
	{"skiff_applied_index", "The highest log index the node's state machine has applied.", nil},
	{"skiff_last_snapshot_index", "The log index of the node's newest snapshot.", nil},
	{"skiff_snapshot_size_bytes", "Size of the node's newest snapshot file.", nil},
	{"skiff_state_keys", "Keys in the node's state.", nil},
	{"skiff_state_bytes", "Sum of key and value lengths in the node's state: what QuotaBytes bounds.", nil},
	{"skiff_state_quota_bytes", "Config.QuotaBytes; 0 means no quota.", nil},
	{"skiff_log_store_info", "1, labelled with the kind of the node's Raft log store (boltdb or wal).", []string{"kind"}},
	{"skiff_watches", "Watches the node serves: from its own program (local) or over the network (network, at most Config.MaxWatches).", []string{"origin"}},
	{"skiff_watch_lag_revisions", "The largest distance, in revisions, between the newest change in the watch history and what a watch on this node has read of it.", nil},
	{"skiff_watch_history_oldest_revision", "The oldest revision the watch history holds changes from; a watch can start after it.", nil},
	{"skiff_watch_history_newest_revision", "The newest revision the watch history has reached.", nil},
	{"skiff_watch_history_changes", "Changes held in the watch history (at most Config.WatchHistory).", nil},
	{"skiff_watch_history_bytes", "Bytes held in the watch history (at most Config.WatchHistoryBytes).", nil},
}

// raftStates are the values of skiff_node_state's state label.
var raftStates = []raft.RaftState{raft.Leader, raft.Follower, raft.Candidate, raft.Shutdown}

func (m *nodeMetrics) collectState(ch chan<- prometheus.Metric) {
	n := m.n
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.state[name], prometheus.GaugeValue, v, labels...)
	}
	st := n.raft.State()
	for _, s := range raftStates {
		gauge("skiff_node_state", boolValue(st == s), strings.ToLower(s.String()))
	}
	leader, _ := n.Leader()
	ready, _ := n.readiness()
	gauge("skiff_leader_known", boolValue(leader != ""))
	gauge("skiff_ready", boolValue(ready))
	gauge("skiff_term", float64(n.raft.CurrentTerm()))
	gauge("skiff_commit_index", float64(n.raft.CommitIndex()))
	gauge("skiff_applied_index", float64(n.fsm.appliedIndex()))
	snapIndex, snapSize := m.lastSnapshot()
	gauge("skiff_last_snapshot_index", float64(snapIndex))
	gauge("skiff_snapshot_size_bytes", float64(snapSize))
	view := n.fsm.store.View()
	gauge("skiff_state_keys", float64(view.Len()))
	gauge("skiff_state_bytes", float64(view.Bytes()))
	gauge("skiff_state_quota_bytes", float64(n.cfg.QuotaBytes))
	gauge("skiff_log_store_info", 1, string(n.kind))
	hs := n.hist.stats()
	network := n.netWatches.Load()
	// A network watch is counted before its subscription starts.
	gauge("skiff_watches", float64(max(int64(hs.watchers)-network, 0)), "local")
	gauge("skiff_watches", float64(network), "network")
	gauge("skiff_watch_lag_revisions", float64(hs.maxLag))
	gauge("skiff_watch_history_oldest_revision", float64(hs.oldest))
	gauge("skiff_watch_history_newest_revision", float64(hs.newest))
	gauge("skiff_watch_history_changes", float64(hs.changes))
	gauge("skiff_watch_history_bytes", float64(hs.bytes))
}

// lastSnapshot returns the index and size of the newest snapshot on
// disk, read from its metadata (a small file per snapshot kept).
func (m *nodeMetrics) lastSnapshot() (index uint64, size int64) {
	index, _ = strconv.ParseUint(m.n.raft.Stats()["last_snapshot_index"], 10, 64)
	metas, err := m.n.snaps.List()
	if err != nil || len(metas) == 0 {
		return index, 0
	}
	return index, metas[0].Size
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
