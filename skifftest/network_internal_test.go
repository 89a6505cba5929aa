package skifftest

import (
	"testing"
	"time"
)

// The same seed gives the same sequence of drops and delays.
func TestNetworkIsSeeded(t *testing.T) {
	run := func(seed int64) []time.Duration {
		n := newNetwork(seed)
		n.setFaults(0, 1, LinkFaults{Delay: 50 * time.Millisecond, Jitter: 40 * time.Millisecond, Drop: 0.5})
		var out []time.Duration
		for i := 0; i < 50; i++ {
			lost, d := n.message(0, 1)
			if lost {
				d = -1
			}
			out = append(out, d)
		}
		return out
	}
	a, b, other := run(1), run(1), run(2)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("message %d: %v and %v with the same seed", i, a[i], b[i])
		}
		if a[i] < -1 || a[i] > 90*time.Millisecond || a[i] >= 0 && a[i] < 10*time.Millisecond {
			t.Fatalf("message %d: delay %v outside 50±40ms", i, a[i])
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == other[i]
	}
	if same {
		t.Fatal("seeds 1 and 2 gave the same sequence")
	}
}
