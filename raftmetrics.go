package skiff

import (
	"fmt"
	"strings"
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// hashicorp/raft (and raft-boltdb) emit their metrics through go-metrics'
// global sink: hashicorp/go-metrics' compat package, which forwards to
// armon/go-metrics unless the program is built with the hashicorpmetrics
// tag. skiff goes through the same compat package, so it installs its
// sink wherever Raft's metrics actually go, whichever the build tag.
//
// The global sink is one per process, while a process may run several
// nodes (tests do): Raft's metrics cannot be told apart by node. So they
// are exposed as what they are, one process-wide set, by one collector
// (RaftCollector), never copied into each node's. A program running
// several nodes reads Raft's figures for all of them together, and each
// node's own state from its skiff_* metrics, which carry its ID.

var raftBridge struct {
	once sync.Once
	sink *gmprom.PrometheusSink
}

// RaftCollector returns the collector of hashicorp/raft's own metrics
// (the raft_* series in README's Metrics table), bridged from go-metrics
// by its Prometheus sink. They are process-wide: one set for every node
// in the process, unlabelled. Register it once per registry, beside each
// node's Collector; Node.MetricsHandler includes it.
//
// The first call installs skiff's sink as go-metrics' global sink,
// replacing any sink the program installed itself, and from then on Raft
// spends a little time on every metric it emits. Before the first call
// nothing is installed and Raft's metrics go nowhere, as they did. Every
// call returns the same collector; it is safe for concurrent use.
func RaftCollector() prometheus.Collector {
	raftBridge.once.Do(installRaftBridge)
	return raftBridge.sink
}

// raftBridgeInstalled reports whether RaftCollector has installed the
// global sink, for tests of what an unused bridge costs.
func raftBridgeInstalled() bool { return raftBridge.sink != nil }

func installRaftBridge() {
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
		// A series Raft stops updating (a leader-only gauge on a node that
		// no longer leads) disappears after a minute instead of staying
		// at its last value.
		Expiration: time.Minute,
		// The sink registers itself; a registry of its own keeps it off
		// the program's default registry, and RaftCollector's callers
		// register it where they want it.
		Registerer:         prometheus.NewRegistry(),
		Name:               "skiff_raft_bridge",
		CounterDefinitions: raftCounters(),
		SummaryDefinitions: raftSummaries(),
		GaugeDefinitions:   raftGauges(),
	})
	if err != nil {
		panic(fmt.Sprintf("skiff: a new registry refused the raft metrics sink: %v", err))
	}
	conf := gometrics.DefaultConfig("")
	conf.EnableHostname = false       // it would prefix gauge names with the host name
	conf.EnableRuntimeMetrics = false // Go's collector covers them, without a goroutine
	// Only Raft's metrics: other libraries in the program that emit
	// through go-metrics do not end up under skiff's name. The per-peer
	// names below repeat, with the peer's ID in the metric's name (not a
	// valid name for every ID), what Raft also emits with a peer_id label.
	conf.FilterDefault = false
	conf.AllowedPrefixes = []string{"raft."}
	conf.BlockedPrefixes = []string{
		"raft.replication.appendEntries.rpc.",
		"raft.replication.appendEntries.logs.",
		"raft.replication.heartbeat.",
		"raft.replication.installSnapshot.",
	}
	if _, err := gometrics.NewGlobal(conf, sink); err != nil {
		panic(fmt.Sprintf("skiff: go-metrics refused its configuration: %v", err))
	}
	raftBridge.sink = sink
}

// raftMetric describes one of Raft's metrics that the bridge declares up
// front: with its help text, and present (at zero) before Raft first
// emits it; declared series never expire. Metrics Raft emits with labels
// are not declared (a declared series would lack the labels), nor gauges
// a node stops updating when it stops leading; they appear when first
// emitted, with their name as help.
type raftMetric struct {
	key  string
	help string
}

// Timers are go-metrics samples in milliseconds, exposed as summaries
// (quantiles over the last 10 s).
var raftCounterHelp = []raftMetric{
	{"raft.apply", "Entries proposed on this process's leaders (Raft Apply calls)."},
	{"raft.barrier", "Barriers issued (skiff issues one per term before serving linearizable reads)."},
	{"raft.verify_leader", "Leadership checks (VerifyLeader) started, one per round of linearizable reads."},
	{"raft.restore", "User restores (Node.Restore)."},
	{"raft.state.follower", "Times a node entered the follower state."},
	{"raft.state.candidate", "Times a node entered the candidate state (started an election)."},
	{"raft.state.leader", "Times a node became leader."},
	{"raft.transition.heartbeat_timeout", "Times a follower heard nothing from its leader for a heartbeat timeout."},
	{"raft.transition.leader_lease_timeout", "Times a leader stepped down for want of contact with a quorum."},
}

var raftSummaryHelp = []raftMetric{
	{"raft.commitTime", "Milliseconds from a leader dispatching entries to their commit."},
	{"raft.fsm.applyBatch", "Milliseconds the state machine took to apply one batch of entries."},
	{"raft.fsm.applyBatchNum", "Entries per batch applied to the state machine."},
	{"raft.fsm.enqueue", "Milliseconds to hand committed entries to the state machine."},
	{"raft.fsm.snapshot", "Milliseconds to capture a snapshot of the state machine (skiff: O(1))."},
	{"raft.fsm.restore", "Milliseconds to restore the state machine from a snapshot."},
	{"raft.leader.dispatchLog", "Milliseconds for a leader to write a batch of entries to its own log."},
	{"raft.leader.lastContact", "Milliseconds since a leader last heard from a follower, sampled for each follower by its lease check."},
	{"raft.rpc.appendEntries", "Milliseconds a follower took to handle an AppendEntries call."},
	{"raft.rpc.appendEntries.storeLogs", "Milliseconds a follower took to store the entries of an AppendEntries call."},
	{"raft.rpc.appendEntries.processLogs", "Milliseconds a follower took to process the entries of an AppendEntries call."},
	{"raft.rpc.processHeartbeat", "Milliseconds a follower took to handle a heartbeat."},
	{"raft.rpc.requestVote", "Milliseconds to handle a vote request."},
	{"raft.rpc.installSnapshot", "Milliseconds a follower took to install a snapshot sent by its leader."},
	{"raft.snapshot.takeSnapshot", "Milliseconds to take a snapshot, from capture to the log truncated behind it."},
	{"raft.snapshot.create", "Milliseconds to create a snapshot file."},
	{"raft.snapshot.persist", "Milliseconds to write a snapshot to its file."},
	{"raft.compactLogs", "Milliseconds to truncate the log behind a snapshot."},
	{"raft.candidate.electSelf", "Milliseconds a candidate took to request votes."},
	{"raft.thread.main.saturation", "Fraction of time Raft's main goroutine was busy (0 to 1)."},
	{"raft.thread.fsm.saturation", "Fraction of time Raft's state machine goroutine was busy (0 to 1)."},
	{"raft.boltdb.storeLogs", "Milliseconds to store a batch of entries in raft.db (boltdb log store only)."},
	{"raft.boltdb.getLog", "Milliseconds to read one entry from raft.db (boltdb log store only; most reads hit skiff's log cache)."},
	{"raft.boltdb.logsPerBatch", "Entries per batch stored in raft.db (boltdb log store only)."},
	{"raft.boltdb.logBatchSize", "Bytes per batch stored in raft.db (boltdb log store only)."},
	{"raft.boltdb.logSize", "Bytes per entry stored in raft.db (boltdb log store only)."},
	{"raft.boltdb.writeCapacity", "Entries per second raft.db could store at the speed of the last batch (boltdb log store only)."},
}

var raftGaugeHelp = []raftMetric{
	{"raft.peers", "Servers in the latest configuration, as a leader last reported it."},
	{"raft.commitNumLogs", "Entries in the last batch a leader committed."},
	{"raft.leader.dispatchNumLogs", "Entries in the last batch a leader wrote to its log."},
}

const raftHelpSuffix = " hashicorp/raft, process-wide."

func raftCounters() []gmprom.CounterDefinition {
	out := make([]gmprom.CounterDefinition, len(raftCounterHelp))
	for i, m := range raftCounterHelp {
		out[i] = gmprom.CounterDefinition{Name: strings.Split(m.key, "."), Help: m.help + raftHelpSuffix}
	}
	return out
}

func raftGauges() []gmprom.GaugeDefinition {
	out := make([]gmprom.GaugeDefinition, len(raftGaugeHelp))
	for i, m := range raftGaugeHelp {
		out[i] = gmprom.GaugeDefinition{Name: strings.Split(m.key, "."), Help: m.help + raftHelpSuffix}
	}
	return out
}

func raftSummaries() []gmprom.SummaryDefinition {
	out := make([]gmprom.SummaryDefinition, len(raftSummaryHelp))
	for i, m := range raftSummaryHelp {
		out[i] = gmprom.SummaryDefinition{Name: strings.Split(m.key, "."), Help: m.help + raftHelpSuffix}
	}
	return out
}
