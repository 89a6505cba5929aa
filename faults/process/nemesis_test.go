package process

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// faultClass is one kind of fault. A run injects it again and again while
// the workload runs: a quiet spell, the fault, a hold, then heal.
type faultClass struct {
	name  string
	netns bool  // needs network namespaces
	sizes []int // cluster sizes it runs on
	once  bool  // inject until it has taken effect once (the damage stays)
	// inject starts one episode of the fault; cluster.heal ends it.
	inject func(t testing.TB, r *run)
}

// classes are every fault class, in the order seeds cycle through them.
var classes = []faultClass{
	{name: "kill-leader", sizes: []int{3, 5}, inject: func(t testing.TB, r *run) {
		r.target(r.leader(), "SIGKILL leader").kill(t)
	}},
	{name: "kill-random", sizes: []int{1, 3, 5}, inject: func(t testing.TB, r *run) {
		for _, n := range r.minority() {
			r.target(n, "SIGKILL").kill(t)
		}
	}},
	{name: "stop-leader", sizes: []int{3, 5}, inject: func(t testing.TB, r *run) {
		r.target(r.leader(), "SIGSTOP leader").freeze()
	}},
	{name: "stop-random", sizes: []int{1, 3, 5}, inject: func(t testing.TB, r *run) {
		for _, n := range r.minority() {
			r.target(n, "SIGSTOP").freeze()
		}
	}},
	{name: "kill-all", sizes: []int{1, 3, 5}, inject: func(t testing.TB, r *run) {
		r.logf("SIGKILL every node at once")
		for _, n := range r.c.nodes {
			n.p.signal(syscall.SIGKILL) // all signals first, then the waits
		}
		for _, n := range r.c.nodes {
			n.kill(t)
		}
	}},
	{name: "damage", sizes: []int{3, 5}, once: true, inject: injectDamage},
	{name: "partition-leader", netns: true, sizes: []int{3, 5}, inject: func(t testing.TB, r *run) {
		l := r.target(r.leader(), "cut off from its peers (the client still reaches it): leader")
		r.c.top.cut(t, []*endpoint{l.ep}, r.endpoints(r.others(l)))
	}},
	{name: "partition-minority", netns: true, sizes: []int{3, 5}, inject: func(t testing.TB, r *run) {
		m := r.minority()
		for _, n := range m {
			r.target(n, "cut off from the majority:")
		}
		r.c.top.cut(t, r.endpoints(m), r.endpoints(r.others(m...)))
	}},
	{name: "partition-client", netns: true, sizes: []int{3, 5}, inject: func(t testing.TB, r *run) {
		m := r.minority()
		for _, n := range m {
			r.target(n, "the only node the client still reaches:")
		}
		r.c.top.cut(t, []*endpoint{r.c.clientEp}, r.endpoints(r.others(m...)))
	}},
	{name: "partition-majority", netns: true, sizes: []int{3, 5}, inject: func(t testing.TB, r *run) {
		groups := r.split()
		var names [][]string
		for _, g := range groups {
			names = append(names, ids(g))
		}
		r.logf("split with no majority on any side: %v", names)
		for i := range groups {
			for _, g := range groups[i+1:] {
				r.c.top.cut(t, r.endpoints(groups[i]), r.endpoints(g))
			}
		}
	}},
	{name: "one-way", netns: true, sizes: []int{3, 5}, inject: func(t testing.TB, r *run) {
		l := r.leader()
		f := r.others(l)[r.rng.IntN(len(r.c.nodes)-1)]
		from, to := l, f
		if r.rng.IntN(2) == 0 {
			from, to = f, l
		}
		r.logf("packets from %s to %s dropped, the other way open (leader %s)", from.spec.ID, to.spec.ID, l.spec.ID)
		r.c.top.cutOneWay(t, from.ep, to.ep)
	}},
	{name: "blackhole-leader", netns: true, sizes: []int{3, 5}, inject: func(t testing.TB, r *run) {
		r.c.top.isolate(t, r.target(r.leader(), "blackholed (veth down, every packet dropped): leader").ep)
	}},
	{name: "blackhole-random", netns: true, sizes: []int{3, 5}, inject: func(t testing.TB, r *run) {
		for _, n := range r.minority() {
			r.c.top.isolate(t, r.target(n, "blackholed (veth down):").ep)
		}
	}},
}

// nemesis injects class until d has passed, healing after each fault.
// Each fault comes a quiet spell after the cluster has a leader again, so
// that it meets a working cluster with writes in flight rather than one
// still electing (a restarted one-node cluster takes up to two heartbeat
// timeouts).
func (r *run) nemesis(t testing.TB, class faultClass, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	if class.once {
		// Sometimes early, sometimes after snapshots and log truncation.
		hold(time.Duration(r.rng.Int64N(int64(d/2) + 1)))
	}
	for time.Now().Before(end) {
		if r.c.leader(10*time.Second) == nil {
			r.logf("no leader within 10s of healing")
		}
		hold(time.Duration(200+r.rng.IntN(800)) * time.Millisecond)
		if class.once && r.injected {
			hold(time.Until(end))
			break
		}
		class.inject(t, r)
		r.stats.Faults++
		hold(time.Duration(1000+r.rng.IntN(2000)) * time.Millisecond)
		r.logf("heal")
		r.c.heal(t)
	}
}

// hold waits for d: the length of a fault or of a quiet spell, not a
// wait for some state.
func hold(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

// injectDamage kills a random node, damages its files, and starts it
// again: Open must refuse them with ErrCorrupt naming the file, and the
// node stays down for the rest of the run. Damage past the applied index
// may pass Open; the node must then stop with ErrCorrupt before it
// applies the entry, or take it again from the leader.
func injectDamage(t testing.TB, r *run) {
	t.Helper()
	n := r.target(r.c.nodes[r.rng.IntN(len(r.c.nodes))], "SIGKILL, damage files, restart:")
	n.kill(t)
	kind, what := damage(t, n.spec.Dir, r.rng)
	if what == "" {
		r.logf("nothing to damage yet; %s restarts as it was", n.spec.ID)
		return
	}
	r.logf("damage: %s", what)
	r.injected = true
	r.c.start(t, n)
	m, err := n.p.expect(time.Minute, "ready", "exit")
	switch {
	case err != nil:
		t.Errorf("node %s on damaged files (%s): %v", n.spec.ID, what, err)
	case m.kind == "ready" && kind == flipUnapplied:
		r.logf("%s opened: the damaged entry is past its applied index", n.spec.ID)
		n.mayStop = true
	case m.kind == "ready":
		t.Errorf("node %s started on damaged files (%s); want Open to fail with ErrCorrupt", n.spec.ID, what)
	default:
		<-n.p.done
		n.expectDown, n.damaged = true, true
		r.checkRefusal(t, n, what, m.body)
	}
}

// leader returns the current leader, or a random running node when no
// node leads within 5 s.
func (r *run) leader() *node {
	if l := r.c.leader(5 * time.Second); l != nil {
		return l
	}
	running := r.c.running()
	n := running[r.rng.IntN(len(running))]
	r.logf("no leader found; taking %s instead", n.spec.ID)
	return n
}

// minority returns a random minority of the nodes (at least one; for a
// one-node cluster, that node).
func (r *run) minority() []*node {
	k := 1
	if size := len(r.c.nodes); size > 2 {
		k = 1 + r.rng.IntN((size-1)/2)
	}
	var out []*node
	for _, i := range r.rng.Perm(len(r.c.nodes))[:k] {
		out = append(out, r.c.nodes[i])
	}
	return out
}

// split returns the nodes in random groups, none a majority: each node
// alone in a cluster of three, 2, 2 and 1 in a cluster of five.
func (r *run) split() [][]*node {
	var groups [][]*node
	perm := r.rng.Perm(len(r.c.nodes))
	for len(perm) > 0 {
		k := min(len(perm), (len(r.c.nodes)-1)/2)
		var g []*node
		for _, i := range perm[:k] {
			g = append(g, r.c.nodes[i])
		}
		groups, perm = append(groups, g), perm[k:]
	}
	return groups
}

// others returns the nodes not in ns.
func (r *run) others(ns ...*node) []*node {
	var out []*node
	for _, n := range r.c.nodes {
		in := false
		for _, x := range ns {
			in = in || x == n
		}
		if !in {
			out = append(out, n)
		}
	}
	return out
}

func ids(ns []*node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.spec.ID)
	}
	return out
}

func (r *run) endpoints(ns []*node) []*endpoint {
	var out []*endpoint
	for _, n := range ns {
		out = append(out, n.ep)
	}
	return out
}

// target logs what is done to n and returns n.
func (r *run) target(n *node, what string) *node {
	r.t.Helper()
	r.logf("%s %s", what, n.spec.ID)
	return n
}

// newRNG returns the nemesis's random source for seed.
func newRNG(seed int64) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 0x6e656d65)) }
