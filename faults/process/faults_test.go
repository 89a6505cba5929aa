package process

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/faults"
)

// faultTiming is the Raft timing of the fault runs: shorter than the
// defaults, so that a run sees several elections in a few seconds.
var faultTiming = timing{Heartbeat: 500 * time.Millisecond, Election: 500 * time.Millisecond, Lease: 250 * time.Millisecond}

// Every node in its own network namespace, the client in another, and
// every fault class.
func TestNetnsFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the process tier starts a cluster of processes per run")
	}
	requireNetns(t)
	runSeeds(t, true, 2)
}

// Nodes and client as processes on 127.0.0.1, with the faults that need
// no network: this runs where namespaces are not permitted.
func TestLoopbackFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the process tier starts a cluster of processes per run")
	}
	runSeeds(t, false, 1)
}

func runSeeds(t *testing.T, netns bool, defaultRuns int) {
	tier := "loopback"
	if netns {
		tier = "netns"
	}
	for _, seed := range seeds(defaultRuns) {
		p, ok := planFor(seed, netns)
		if !ok {
			t.Skipf("no fault class %q for this tier", *flagClass)
		}
		name := fmt.Sprintf("seed=%d/%s/%s/%d", seed, p.class.name, p.store, p.size)
		t.Run(name, func(t *testing.T) {
			st := &runStats{Tier: tier, Seed: seed, Class: p.class.name, Store: string(p.store), Nodes: p.size}
			start := time.Now()
			// Registered first, so it runs last: after the cluster is gone
			// and its files are kept or removed.
			t.Cleanup(func() {
				st.RunSecs, st.TestFailed = time.Since(start).Seconds(), t.Failed()
				writeStats(t, st)
				if t.Failed() {
					t.Logf("seed %d (%s, %s, %d-node cluster, %s) failed; reproduce with:\n\t%s",
						seed, p.class.name, p.store, p.size, tier, reproduce(t, seed))
				}
			})
			runOnce(t, seed, p, netns, st)
		})
	}
}

// reproduce returns the command that runs the seed's run again: the same
// test, seed and flags that change what a seed chooses.
func reproduce(t testing.TB, seed int64) string {
	cmd := fmt.Sprintf("go test ./faults/process -run '^%s$' -faults.seed=%d", strings.Split(t.Name(), "/")[0], seed)
	if *flagClass != "" {
		cmd += " -faults.class=" + *flagClass
	}
	if d := flag.Lookup("faults.duration"); d.Value.String() != d.DefValue {
		cmd += " -faults.duration=" + d.Value.String()
	}
	return cmd + " -v"
}

// plan is what a seed chooses.
type plan struct {
	class faultClass
	store skiff.LogStoreKind
	size  int
}

// planFor picks a run's fault class, log store and cluster size from its
// seed, so that consecutive seeds go through every combination.
func planFor(seed int64, netns bool) (plan, bool) {
	var eligible []faultClass
	for _, c := range classes {
		if (netns || !c.netns) && (*flagClass == "" || *flagClass == c.name) {
			eligible = append(eligible, c)
		}
	}
	if len(eligible) == 0 {
		return plan{}, false
	}
	s, n := uint64(seed), uint64(len(eligible))
	c := eligible[s%n]
	stores := []skiff.LogStoreKind{skiff.LogStoreBolt, skiff.LogStoreWAL}
	return plan{class: c, store: stores[(s/n)%2], size: c.sizes[(s/(2*n))%uint64(len(c.sizes))]}, true
}

// run is one seeded run in progress.
type run struct {
	t     testing.TB
	seed  int64
	c     *cluster
	rng   *rand.Rand
	start time.Time
	stats *runStats
	// injected: a fault of a once class has taken effect.
	injected bool
	healed   time.Time // when the last fault was undone
}

func (r *run) logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf("+%5.2fs "+format, append([]any{time.Since(r.start).Seconds()}, args...)...)
}

// runOnce starts a cluster and the client, injects p's fault class for
// -faults.duration, heals, and checks; st receives the run's figures.
func runOnce(t *testing.T, seed int64, p plan, netns bool, st *runStats) {
	c := newCluster(t, clusterOpts{size: p.size, store: p.store, timing: faultTiming, snapshotEvery: 400, netns: netns})
	if c.leader(15*time.Second) == nil {
		t.Fatalf("a new cluster of %d elected no leader within 15s", p.size)
	}
	r := &run{t: t, seed: seed, c: c, rng: newRNG(seed), start: time.Now(), stats: st}
	history := filepath.Join(c.base, "history.jsonl")
	cl := c.startClient(t, clientSpec{Seed: seed, Clients: 4, History: history})
	r.logf("cluster of %d (%s) up, client running; faults for %v; logs and data in %s", p.size, p.store, *flagDuration, c.base)
	r.nemesis(t, p.class, *flagDuration)
	c.heal(t)
	r.healed = time.Now()
	r.logf("healed")
	cl.send(t, "stop")
	if _, err := cl.expect(30*time.Second, "stopped"); err != nil {
		t.Fatal(err)
	}
	ops := readHistory(t, history)
	cl.send(t, "final")
	m, err := cl.expect(time.Minute, "final")
	if err != nil {
		t.Fatal(err)
	}
	var fin finalResult
	if err := json.Unmarshal([]byte(m.body), &fin); err != nil {
		t.Fatal(err)
	}
	if fin.ListOp != nil {
		// The history file keeps what was checked, for a failure's reader.
		ops = append(ops, *fin.ListOp)
		if err := writeHistory(history, ops); err != nil {
			t.Error(err)
		}
	}
	r.check(t, p, ops, fin)
}

func readHistory(t testing.TB, path string) []faults.Op {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ops []faults.Op
	dec := json.NewDecoder(f)
	for {
		var op faults.Op
		if err := dec.Decode(&op); errors.Is(err, io.EOF) {
			return ops
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		ops = append(ops, op)
	}
}

// check runs every check on a healed cluster: the first write after
// healing, the invariants, the replicas, the shared checker over the
// whole history (ops ends with the final listing); it logs the run's
// RESULT line.
func (r *run) check(t *testing.T, p plan, ops []faults.Op, fin finalResult) {
	writeAfter := time.Unix(0, fin.WriteOK).Sub(r.healed)
	switch {
	case fin.WriteErr != "":
		t.Errorf("after healing, no write succeeded: %s", fin.WriteErr)
	case writeAfter > 10*time.Second:
		t.Errorf("after healing, the first write succeeded after %v; want 10s at most", writeAfter)
	}
	var vs []violation
	if fin.ListErr != "" {
		t.Errorf("final linearizable List(%q): %s", workloadPrefix, fin.ListErr)
	} else {
		final := map[string]*faults.Entry{}
		for i := range fin.KVs {
			final[fin.KVs[i].Key] = &fin.KVs[i]
		}
		vs = append(checkFinal(ops, final), checkReads(ops)...)
		vs = append(vs, checkStale(ops)...)
		r.checkReplicas(t, fin)
	}
	for _, v := range vs {
		t.Error(v.msg)
	}
	h := checkHistory(ops, r.c.base)
	for _, msg := range h.failures() {
		t.Error(msg)
	}
	for _, n := range r.c.nodes {
		r.c.checkExit(t, n)
	}
	r.stats.record(ops, vs, h, writeAfter)
	s := r.stats
	r.logf("RESULT seed=%d class=%s store=%s nodes=%d ops=%d ok=%d failed=%d unknown=%d violations=%d lost=%d "+
		"linearizable=%s (%d lost per reads, checked in %v) write-after-heal=%v",
		r.seed, p.class.name, p.store, p.size, s.Ops, s.OK, s.Failed, s.Unknown, s.Violations, s.LostFinal,
		s.Linearizable, s.LostReads, h.took.Round(time.Millisecond), writeAfter.Round(time.Millisecond))
}

// checkReplicas waits until every running node has applied the same
// index, then compares each one's state with the final linearizable read.
func (r *run) checkReplicas(t testing.TB, fin finalResult) {
	t.Helper()
	sts, err := r.c.converge(15 * time.Second)
	if err != nil {
		t.Errorf("replicas did not reach the same applied index within 15s: %v", err)
		return
	}
	for _, st := range sts {
		if !slices.Equal(st.KVs, fin.KVs) {
			t.Errorf("node %s at applied index %d holds %+v; the final read (revision %d) saw %+v",
				st.ID, st.Applied, st.KVs, fin.Rev, fin.KVs)
		}
	}
	r.logf("%d replicas at applied index %d, %d keys", len(sts), sts[0].Applied, len(sts[0].KVs))
}

// checkRefusal checks how a node refused its damaged files: ErrCorrupt,
// naming a file in its data dir.
func (r *run) checkRefusal(t testing.TB, n *node, what, body string) {
	t.Helper()
	var ex nodeExit
	if err := json.Unmarshal([]byte(body), &ex); err != nil {
		t.Fatal(err)
	}
	switch {
	case !ex.Corrupt:
		t.Errorf("node %s refused damaged files (%s) with %q; want ErrCorrupt", n.spec.ID, what, ex.Err)
	case !strings.Contains(ex.Err, n.spec.Dir):
		t.Errorf("node %s refused damaged files (%s) with %q, which names no file in %s", n.spec.ID, what, ex.Err, n.spec.Dir)
	default:
		r.logf("%s refused its damaged files: %s", n.spec.ID, ex.Err)
	}
}
