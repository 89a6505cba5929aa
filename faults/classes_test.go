package faults

import (
	"context"
	"fmt"
	"time"

	"github.com/skiffkv/skiff/skifftest"
)

// class is a kind of fault. inject applies it while the workload runs and
// heals it before returning; sizes are the cluster sizes it makes sense
// for.
type class struct {
	name   string
	sizes  []int
	inject func(r *run)
}

// classes is indexed by seed/2; append new classes at the end so that
// existing seeds keep their meaning.
var classes = []class{
	{"partition-leader", []int{3, 5}, partitionLeader},
	{"partition-minority", []int{3, 5}, partitionMinority},
	{"partition-majority", []int{3, 5}, partitionMajority},
	{"client-partition", []int{3, 5}, clientPartition},
	{"one-way", []int{3, 5}, oneWay},
	{"delay", []int{1, 3, 5}, delay},
	{"drop", []int{3, 5}, drop},
	{"snapshot-install", []int{3, 5}, snapshotInstall},
	{"restart", []int{1, 3, 5}, restart},
	{"restart-snapshotting", []int{1, 3, 5}, restartSnapshotting},
	{"restart-installing", []int{3, 5}, restartInstalling},
	{"add-node", []int{1, 3}, addNode},
	{"remove-follower", []int{3, 5}, removeFollower},
	{"remove-leader", []int{3, 5}, removeLeader},
	{"transfer-leader", []int{3, 5}, transferLeader},
}

// pause waits a seeded time between lo and hi milliseconds: how long a
// phase of the run lasts, not a wait for some state.
func (r *run) pause(lo, hi int) {
	time.Sleep(time.Duration(lo+r.rng.IntN(hi-lo+1)) * time.Millisecond)
}

// hold keeps a fault in place for about a second.
func (r *run) hold() { r.pause(700, 1200) }

func (r *run) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.t.Logf("fault: %s", msg)
	if r.stats.Note != "" {
		r.stats.Note += "; "
	}
	r.stats.Note += msg
}

// leader waits for a settled leader; a cluster that has none within 10 s
// fails the run.
func (r *run) leader() int {
	r.t.Helper()
	l, err := r.c.WaitForLeaderWithin(10 * time.Second)
	if err != nil {
		r.t.Fatalf("%v", err)
	}
	return l
}

// others returns the running nodes other than the given ones, shuffled.
func (r *run) others(not ...int) []int {
	var out []int
	for i := 0; i < r.c.Len(); i++ {
		skip := r.c.Node(i) == nil
		for _, n := range not {
			skip = skip || i == n
		}
		if !skip {
			out = append(out, i)
		}
	}
	r.rng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	return out
}

// waitFor polls cond until it holds, failing the run after d.
func (r *run) waitFor(d time.Duration, what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling
	}
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func partitionLeader(r *run) {
	l := r.leader()
	r.note("partition leader %d", l)
	r.c.Partition(l)
	r.hold()
	r.c.Heal()
}

func partitionMinority(r *run) {
	side := r.others()[:1+r.rng.IntN((r.c.Len()-1)/2)]
	r.note("partition minority %v", side)
	r.c.Partition(side...)
	r.hold()
	r.c.Heal()
}

// partitionMajority splits the nodes into groups none of which holds a
// majority: no quorum anywhere until the heal.
func partitionMajority(r *run) {
	o := r.others()
	if len(o) == 3 {
		r.note("partition every node from every other")
		r.c.Partition(o[0])
		r.c.Partition(o[1])
	} else {
		r.note("partition into %v | %v | %v", o[:2], o[2:4], o[4:])
		r.c.Partition(o[0], o[1])
		r.c.Partition(o[2], o[3])
	}
	r.hold()
	r.c.Heal()
}

// clientPartition lets the network client reach only a minority.
func clientPartition(r *run) {
	cut := r.others()[:r.c.Len()/2+1]
	r.note("clients cut from %v (leader %d)", cut, r.leader())
	r.c.CutClients(cut...)
	r.hold()
	r.c.Heal()
}

func oneWay(r *run) {
	l := r.leader()
	f := r.others(l)[0]
	from, to := l, f
	if r.rng.IntN(2) == 0 {
		from, to = f, l
	}
	r.note("cut %d→%d one way (leader %d)", from, to, l)
	r.c.CutOneWay(from, to)
	r.hold()
	r.c.Heal()
}

func delay(r *run) {
	d := time.Duration(10+r.rng.IntN(50)) * time.Millisecond
	f := skifftest.LinkFaults{Delay: d, Jitter: d / 2}
	r.note("delay %v ± %v on every link", f.Delay, f.Jitter)
	r.c.SetNetworkFaults(f)
	for i := 0; i < r.c.Len(); i++ {
		r.c.SetLinkFaults(skifftest.Clients, i, f)
		r.c.SetLinkFaults(i, skifftest.Clients, f)
	}
	r.hold()
	r.c.Heal()
}

func drop(r *run) {
	p := 0.05 + 0.25*r.rng.Float64()
	f := skifftest.LinkFaults{Drop: p}
	r.note("drop %.0f%% on every link", 100*p)
	r.c.SetNetworkFaults(f)
	for i := 0; i < r.c.Len(); i++ {
		r.c.SetLinkFaults(skifftest.Clients, i, f)
		r.c.SetLinkFaults(i, skifftest.Clients, f)
	}
	r.hold()
	r.c.Heal()
}
