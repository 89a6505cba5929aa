package skifftest

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Clients stands for every caller outside the cluster (Cluster.Client and
// anything using Cluster.Dialer) where a link's end is a node index.
const Clients = -1

// LinkFaults degrades one direction of a link. The zero value is a
// healthy link.
type LinkFaults struct {
	// Delay is added to every message, give or take up to Jitter.
	Delay, Jitter time.Duration
	// Drop is the probability (0 to 1) that a message is lost. A lost
	// Raft message fails the call, as a lost packet would time it out; on
	// a gRPC connection, which is a byte stream, a lost write costs a
	// retransmission (DropRetransmit) instead, as it does over TCP.
	Drop float64
}

// DropRetransmit is what a dropped write costs on a gRPC connection: the
// retransmission timeout of a stream that lost a segment.
const DropRetransmit = 200 * time.Millisecond

// errLink is the error of a Raft call that a fault stopped.
var errLink = errors.New("skifftest: link fault")

// link is one direction between two nodes, or between Clients and a node.
type link struct{ from, to int }

// network holds the faults of every link. All its randomness comes from
// one generator seeded by Options.Seed, so a run's choices are
// reproducible (the interleaving of goroutines is not).
type network struct {
	mu     sync.Mutex
	cut    map[link]bool
	faults map[link]LinkFaults
	rng    *rand.Rand
	// changed is closed and replaced whenever a fault changes, waking
	// connections that wait for a cut to heal.
	changed chan struct{}
	conns   map[*faultConn]bool
}

func newNetwork(seed int64) *network {
	return &network{cut: map[link]bool{}, faults: map[link]LinkFaults{},
		rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed)), changed: make(chan struct{}), conns: map[*faultConn]bool{}}
}

// changedLocked wakes the waiters; n.mu must be held.
func (n *network) changedLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// setCut cuts or restores from→to. A link cut both ways closes the open
// connections between its ends, as a partition does to TCP connections
// once their keepalives fail; a one-way cut leaves them open and stalls
// the cut direction.
func (n *network) setCut(from, to int, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cut {
		n.cut[link{from, to}] = true
	} else {
		delete(n.cut, link{from, to})
	}
	n.changedLocked()
	if !n.cut[link{from, to}] || !n.cut[link{to, from}] {
		return
	}
	for fc := range n.conns {
		if fc.from == from && fc.to == to || fc.from == to && fc.to == from {
			fc.closeInner()
		}
	}
}

// isCut reports whether from→to is cut.
func (n *network) isCut(from, to int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[link{from, to}]
}

// healthy reports whether both directions between a and b are free of
// faults.
func (n *network) healthy(a, b int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	zero := LinkFaults{}
	return !n.cut[link{a, b}] && !n.cut[link{b, a}] && n.faults[link{a, b}] == zero && n.faults[link{b, a}] == zero
}

func (n *network) setFaults(from, to int, f LinkFaults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if f == (LinkFaults{}) {
		delete(n.faults, link{from, to})
	} else {
		n.faults[link{from, to}] = f
	}
	n.changedLocked()
}

// heal removes every cut and fault.
func (n *network) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[link]bool{}
	n.faults = map[link]LinkFaults{}
	n.changedLocked()
}

// message decides the fate of one message from→to: whether it is lost
// and how long it takes.
func (n *network) message(from, to int) (lost bool, delay time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut[link{from, to}] {
		return true, 0
	}
	f, ok := n.faults[link{from, to}]
	if !ok {
		return false, 0
	}
	delay = f.Delay
	if f.Jitter > 0 {
		delay += time.Duration(n.rng.Int64N(int64(2*f.Jitter+1))) - f.Jitter
	}
	return f.Drop > 0 && n.rng.Float64() < f.Drop, max(delay, 0)
}

// waitUncut blocks while from→to is cut, until done closes.
func (n *network) waitUncut(from, to int, done <-chan struct{}) bool {
	for {
		n.mu.Lock()
		cut, changed := n.cut[link{from, to}], n.changed
		n.mu.Unlock()
		if !cut {
			return true
		}
		select {
		case <-changed:
		case <-done:
			return false
		}
	}
}

// sleep waits d, or until done closes.
func sleep(d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
