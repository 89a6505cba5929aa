package process

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

// leaderFault is a fault whose failover is measured. Its class is the
// name of the fault class that injects the same fault, for -faults.class.
type leaderFault struct {
	class, name string
	netns       bool
	inject      func(t testing.TB, c *cluster, leader *node)
}

var leaderFaults = []leaderFault{
	{"stop-leader", "leader frozen (SIGSTOP)", false, func(t testing.TB, c *cluster, l *node) { l.freeze() }},
	{"partition-leader", "leader partitioned from its peers, client reaches it", true, func(t testing.TB, c *cluster, l *node) {
		var peers []*endpoint
		for _, n := range c.nodes {
			if n != l {
				peers = append(peers, n.ep)
			}
		}
		c.top.cut(t, []*endpoint{l.ep}, peers)
	}},
	{"kill-leader", "leader killed (SIGKILL)", false, func(t testing.TB, c *cluster, l *node) { l.kill(t) }},
	{"blackhole-leader", "leader host blackholed (veth down)", true, func(t testing.TB, c *cluster, l *node) {
		c.top.isolate(t, l.ep)
	}},
}

// For each fault to the leader, the time from the fault to the first
// successful write the client started after it, over -faults.trials
// trials. The client writes one key in a loop, one write at a time, each
// with a -faults.writetimeout deadline, and knows the leader when the
// fault comes; the cluster has skiff's default Raft timing. A trial with
// no successful write within -faults.trialtimeout is reported as a
// timeout.
func TestFailoverMeasurement(t *testing.T) {
	if !*flagMeasure {
		t.Skip("a measurement, not a test: run with -faults.measure")
	}
	netns := netnsProblem() == ""
	if !netns {
		t.Logf("network namespaces not permitted (%s): measuring only the faults that need no network", netnsProblem())
	}
	def := skiff.DefaultConfig()
	tm := timing{Heartbeat: def.HeartbeatTimeout, Election: def.ElectionTimeout, Lease: def.LeaderLeaseTimeout}
	c := newCluster(t, clusterOpts{size: 3, store: skiff.LogStoreBolt, timing: tm, netns: netns})
	w := startWriter(t, c)
	var rows []string
	for _, f := range leaderFaults {
		if f.netns && !netns || *flagClass != "" && *flagClass != f.class {
			continue
		}
		rows = append(rows, measureFault(t, c, w, f))
	}
	knows := "the client knows the leader"
	if *flagStale {
		knows = "the client may not know the leader"
	}
	t.Logf("fault to first successful write, 3 nodes, %s; heartbeat timeout %v, election timeout %v, leader lease %v; "+
		"each write's deadline %v, trial bound %v; %s\n%-52s %6s %8s %10s %10s\n%s", skiff.LogStoreBolt,
		tm.Heartbeat, tm.Election, tm.Lease, *flagWrite, *flagTrial, knows,
		"fault", "trials", "timeouts", "p50", "p99", strings.Join(rows, "\n"))
}

// measureFault runs the trials of f and returns its row of the table.
func measureFault(t testing.TB, c *cluster, w *writer, f leaderFault) string {
	t.Helper()
	var took []time.Duration // a timeout counts as the trial's bound
	timeouts := 0
	for i := range *flagTrials {
		d, ok, detail := measureTrial(t, c, w, f)
		t.Logf("%s, trial %d: %s; %s", f.name, i+1, fmtTrial(d, ok), detail)
		if !ok {
			timeouts++
		}
		took = append(took, d)
	}
	return fmt.Sprintf("%-52s %6d %8d %10s %10s", f.name, len(took), timeouts,
		fmtQuantile(took, 0.50, timeouts), fmtQuantile(took, 0.99, timeouts))
}

// measureTrial waits for a healthy cluster, injects f on the leader and
// returns how long until a write started after the fault succeeded; false
// when none did within the trial bound. The fault counts from the moment
// it is wholly in place: a write that starts while the ip commands of a
// partition still run may succeed before it cuts anything. The trial
// heals the cluster afterwards. detail says which node led and how the
// writes in between failed.
func measureTrial(t testing.TB, c *cluster, w *writer, f leaderFault) (d time.Duration, ok bool, detail string) {
	t.Helper()
	if _, ok := w.firstOK(time.Now(), 30*time.Second); !ok {
		t.Fatalf("no write succeeded within 30s of healing; client log %s", w.p.logPath)
	}
	l := c.leader(15 * time.Second)
	if l == nil {
		t.Fatal("no leader within 15s")
	}
	if !*flagStale {
		if got := w.learnLeader(t); got != strconv.Quote(l.spec.ID) {
			t.Logf("  the client was told the leader is %s, the nodes say %s", got, l.spec.ID)
		}
	}
	f.inject(t, c, l)
	fault := time.Now()
	end, ok := w.firstOK(fault, *flagTrial)
	detail = "leader " + l.spec.ID
	if failed, last := w.failedSince(fault, end); failed > 0 {
		detail += fmt.Sprintf("; %d writes failed in between, the last with: %s", failed, last)
	}
	c.heal(t)
	if !ok {
		return *flagTrial, false, detail
	}
	return end.Sub(fault), true, detail
}

// writer collects the reports of the client's measuring writes.
type writer struct {
	p       *proc
	mu      sync.Mutex
	recs    []writeRecord
	more    chan struct{} // a report arrived
	leaders chan string   // answers to "leader"
}

// startWriter starts the client in measuring mode and collects its
// reports until it exits.
func startWriter(t testing.TB, c *cluster) *writer {
	t.Helper()
	w := &writer{more: make(chan struct{}, 1), leaders: make(chan string, 1)}
	w.p = c.startClient(t, clientSpec{Measure: true, WriteTimeout: *flagWrite})
	go func() {
		for {
			m, err := w.p.expect(time.Hour, "w", "leader")
			if err != nil {
				return
			}
			if m.kind == "leader" {
				w.leaders <- m.body
				continue
			}
			var rec writeRecord
			if json.Unmarshal([]byte(m.body), &rec) == nil {
				w.mu.Lock()
				w.recs = append(w.recs, rec)
				w.mu.Unlock()
				select {
				case w.more <- struct{}{}:
				default:
				}
			}
		}
	}()
	return w
}

// learnLeader makes the client ask the cluster who leads, as it does when
// it dials, so that every trial starts with a client that sends its
// writes to the leader itself. A client that lost its leader to an
// earlier fault does not learn the new one from successful writes: it
// sends them to any node, which forwards them (-faults.staleleader
// measures that state).
func (w *writer) learnLeader(t testing.TB) string {
	t.Helper()
	w.p.send(t, "leader")
	select {
	case body := <-w.leaders:
		return body
	case <-time.After(15 * time.Second):
		t.Fatalf("the client did not say who leads within 15s; log %s", w.p.logPath)
		return ""
	}
}

// firstOK returns when the first write started at or after from
// succeeded, waiting at most limit; false when none did.
func (w *writer) firstOK(from time.Time, limit time.Duration) (time.Time, bool) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		if end, ok := w.okSince(from); ok {
			return end, true
		}
		select {
		case <-w.more:
		case <-timer.C:
			return time.Time{}, false
		}
	}
}

// okSince returns the end of the first successful write started at or
// after from. Writes are reported in the order they started.
func (w *writer) okSince(from time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.recs), func(i int) bool { return w.recs[i].Start >= from.UnixNano() })
	for _, r := range w.recs[i:] {
		if r.Err == "" {
			return time.Unix(0, r.End), true
		}
	}
	return time.Time{}, false
}

// failedSince counts the failed writes that started at or after from and
// ended before until (zero: any time), and returns the last one's error.
func (w *writer) failedSince(from, until time.Time) (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, last := 0, ""
	i := sort.Search(len(w.recs), func(i int) bool { return w.recs[i].Start >= from.UnixNano() })
	for _, r := range w.recs[i:] {
		if r.Err != "" && (until.IsZero() || r.End <= until.UnixNano()) {
			n, last = n+1, r.Err
		}
	}
	return n, last
}

func fmtTrial(d time.Duration, ok bool) string {
	if !ok {
		return fmt.Sprintf("TIMEOUT (no successful write within %v)", d)
	}
	return d.Round(time.Millisecond).String()
}

// fmtQuantile returns the q quantile of ds (nearest rank); one that falls
// on a timeout prints as "timeout".
func fmtQuantile(ds []time.Duration, q float64, timeouts int) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, int(q*float64(len(s))+0.999999)-1)
	if i >= len(s)-timeouts {
		return "timeout"
	}
	return s[i].Round(time.Millisecond).String()
}
